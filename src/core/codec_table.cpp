// src/core/codec_table.cpp — the codec table and Codec::create.
#include "turboquant/codec_table.h"

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

// One row per codec id, in id order. Baseline codecs (issue 5) add their rows here.
const CodecInfo kRows[] = {
    {CodecId::kFp32, "fp32", "float32 values (reference)", make_passthrough},
    {CodecId::kFp16, "fp16", "IEEE half values", make_passthrough},
    {CodecId::kBf16, "bf16", "bfloat16 values", make_passthrough},
    {CodecId::kTqMse, "tq", "TurboQuant-mse: rotation + Lloyd-Max codebook + norm (tqB, tqB.5)", make_tq},
    {CodecId::kTqProd, "tqp", "TurboQuant-prod: mse at B-1 bits + 1-bit QJL residual (tqBp)", make_tq},
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
