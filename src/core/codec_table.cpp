// src/core/codec_table.cpp — the codec table and Codec::create.
#include "turboquant/codec_table.h"

#include "turboquant/baseline_codecs.h"
#include "turboquant/error.h"
#include "turboquant/passthrough_codec.h"
#include "turboquant/tq_codec.h"

namespace tq {
namespace {

std::shared_ptr<const Codec> make_passthrough(const CodecSpec& s, int d, const float*, size_t) {
  return std::make_shared<PassthroughCodec>(s, d);
}
std::shared_ptr<const Codec> make_tq(const CodecSpec& s, int d, const float* calib, size_t n) {
  return std::make_shared<TqCodec>(s, d, calib, n);
}
std::shared_ptr<const Codec> make_fp8(const CodecSpec& s, int d, const float*, size_t) {
  return std::make_shared<Fp8Codec>(s, d);
}
std::shared_ptr<const Codec> make_block_int(const CodecSpec& s, int d, const float*, size_t) {
  return std::make_shared<BlockIntCodec>(s, d);
}
std::shared_ptr<const Codec> make_kivi2(const CodecSpec& s, int d, const float*, size_t) {
  return std::make_shared<Kivi2Codec>(s, d);
}

// One row per codec id, in id order. Baseline codecs (issue 5) add their rows here.
const CodecInfo kRows[] = {
    {CodecId::kFp32, "fp32", "float32 values (reference)", make_passthrough},
    {CodecId::kFp16, "fp16", "IEEE half values", make_passthrough},
    {CodecId::kBf16, "bf16", "bfloat16 values", make_passthrough},
    {CodecId::kTqMse, "tq", "TurboQuant-mse: rotation + Lloyd-Max codebook + norm (tqB, tqB.5)", make_tq},
    {CodecId::kTqProd, "tqp", "TurboQuant-prod: mse at B-1 bits + 1-bit QJL residual (tqBp)", make_tq},
    {CodecId::kFp8, "fp8", "fp8 e4m3 values, one fp32 scale per vector (max -> 448)", make_fp8},
    {CodecId::kQ8, "q8", "int8 per block of 32, fp16 scale (ggml q8_0)", make_block_int},
    {CodecId::kQ4, "q4", "int4 per block of 32, fp16 scale (ggml q4_0)", make_block_int},
    {CodecId::kQ8r, "q8r", "q8 after a randomized Hadamard (dense if d is not 2^k) rotation", make_block_int},
    {CodecId::kQ4r, "q4r", "q4 after a randomized Hadamard (dense if d is not 2^k) rotation", make_block_int},
    {CodecId::kKivi2, "kivi2", "KIVI 2-bit asymmetric per token, blocks of 32 (keys per channel: tq eval)",
     make_kivi2},
};

}  // namespace

const CodecInfo* codec_rows(size_t* n) {
  *n = sizeof(kRows) / sizeof(kRows[0]);
  return kRows;
}

const CodecInfo& codec_info(CodecId id) {
  for (const auto& r : kRows)
    if (r.id == id) return r;
  TQ_FAIL(kUnsupported, "codec id {} is not available in this build", int(id));
}

std::shared_ptr<const Codec> Codec::create(const CodecSpec& spec, int d, const float* calib, size_t n_calib) {
  const CodecInfo& info = codec_info(spec.id);
  TQ_CHECK(info.make != nullptr, kUnsupported, "codec '{}' is not available in this build", spec.name());
  return info.make(spec, d, calib, n_calib);
}

}  // namespace tq
