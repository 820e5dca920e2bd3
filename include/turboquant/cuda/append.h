// turboquant/cuda/append.h — append (encode) new K or V vectors into the compressed paged cache on
// CUDA. The codes are bit-identical to TqCodec::encode on the CPU for the same codec spec (seed),
// placed in the page layout that DecodePlan reads (KvPageLayout of layout.h).
//
//   pool[slot_mapping[i] / page_tokens][head][slot_mapping[i] % page_tokens] = encode(x[i, head, :])
//
// Plan once (validates, builds the kernel constants), run per step: no allocation, no host sync.
// One plan per pool (K and V pools may use different codecs).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "turboquant/codec.h"
#include "turboquant/cuda/decode.h"
#include "turboquant/layout.h"

namespace tq::cuda {

class AppendPlan {
 public:
  // codec: fp16, single-part TurboQuant-mse tq1 .. tq8 (Hadamard rotation, fp16 norms) at
  // head_dim 64, 128 or 256 (tq5..tq8: the tiled kernel only, not TQ_CUDA_APPEND_V1), or the fractional
  // tq1.5 .. tq7.5 (64, 128, 256; tq2.5 at 64: one thread per vector) with fp16 norms and the default
  // rotations (uncalibrated split: part 0 = the first D/4 resp. D/2 channels; tq2.5's part 1 rotates
  // densely), or TurboQuant-prod tq2p .. tq8p (single part, Hadamard, fp16 norm and gamma) at 64, 128,
  // 256, or the fractional prod tq1.5p .. tq7.5p (64, 128, 256), split as the fractional codecs.
  // Throws tq::Error(kUnsupported) otherwise (fp32 norms, other head_dims).
  //
  // token_quads: the codes of every 16 tokens are written as one block in token quads (layout.h
  // quad_pos; layout().quad_bits = the codec's bits), the V layout of DecodeShape::v_quads and of
  // KvCacheConfig::v_quads. Single-part tq1..tq4 only, head_dim % 64 == 0 and page_tokens % 16 ==
  // 0 (kUnsupported / kInvalidArgument otherwise). Each token's bits are set by atomics, so the
  // tokens of a block may be appended in any order and by concurrent runs.
  AppendPlan(const CodecSpec& codec, int heads_kv, int head_dim, int page_tokens, int num_pages, DType in_dtype,
             bool token_quads = false);
  ~AppendPlan();
  AppendPlan(const AppendPlan&) = delete;
  AppendPlan& operator=(const AppendPlan&) = delete;

  KvPageLayout layout() const;
  const Codec& codec() const;
  // x [n_tokens, heads_kv, head_dim] (in_dtype, device), slot_mapping int32 [n_tokens] (device;
  // page * page_tokens + offset, negative = skip), pool: the K or V page pool (device).
  void run(const void* x, const int32_t* slot_mapping, int n_tokens, uint8_t* pool, void* stream) const;
  // Synchronously reads and clears the device error flag (bit 0: a slot beyond the pool, not
  // written; bit 1: a vector norm beyond the fp16 range).
  int read_error_flag() const;

  struct Impl;
 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tq::cuda
