// turboquant/cuda/decode.h — fused decode attention over the compressed paged KV cache on CUDA.
//
// Plan once (validates shapes/codecs, sizes one persistent wave of CTAs from the device's occupancy,
// sizes the workspace), then run any number of times: run() does no allocation and no host
// synchronization (one kernel launch), so a decode step can be captured in a CUDA graph.
//
//   out[b, h, :] = softmax(scale · q[b,h,:] · K[b, g(h), :t]ᵀ) · V[b, g(h), :t],  t = seq_lens[b]
//
// K and V are read from page pools in the layout of turboquant/layout.h (KvPageLayout): page p of
// a pool holds page_tokens tokens of every KV head. TurboQuant codecs are scored in the rotated
// domain: q is rotated once (randomized Hadamard, 3 rounds; the fractional tq1.5 .. tq7.5 rotate each
// part, a 96 / 192-dim part by its dense matrix; prod codecs also sketch it, S·Rq), V is
// accumulated in the rotated domain (prod: its QJL term in the sketch domain, mapped back by S^T)
// and inverse-rotated once per output row. docs/CUDA.md describes the kernel (v3: bulk copies into
// a shared-memory ring, QK and PV on tensor cores, codes decoded by prmt lookups).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "turboquant/codec.h"
#include "turboquant/layout.h"

namespace tq::cuda {

enum class DType : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

struct DecodeShape {
  int batch = 1, heads_q = 32, heads_kv = 8, head_dim = 128;
  int page_tokens = 64;
  int max_pages_per_seq = 0;  // columns of the page table
  int max_seq_len = 0;        // upper bound of seq_lens (sizes the split schedule)
  int num_pages = 0;          // pages in each pool (page ids are checked on the device)
  DType q_dtype = DType::kF16, out_dtype = DType::kF16;
  float scale = 0;            // 0: 1/sqrt(head_dim)
  // V pages in token quads (layout.h quad_pos; v_layout().quad_bits > 0), PV on int8 tensor cores
  // (mma.s8.u8: V's centroids rounded to int8, p to u8 per 32-token block pair; docs/CUDA.md).
  // Built for tqB/tqB, B = 2..4; the pages come from AppendPlan(..., token_quads = true) or a CPU
  // cache with KvCacheConfig::v_quads.
  bool v_quads = false;
};

struct DecodeArgs {
  const void* q = nullptr;              // [B, Hq, D] q_dtype
  const uint8_t* k_pool = nullptr;      // pages of K
  const uint8_t* v_pool = nullptr;      // pages of V
  const int32_t* page_table = nullptr;  // [B, max_pages_per_seq]
  const int32_t* seq_lens = nullptr;    // [B], each in [1, max_seq_len]
  void* out = nullptr;                  // [B, Hq, D] out_dtype
  void* workspace = nullptr;            // workspace_bytes() bytes, 256-byte aligned, caller-owned;
                                        // zeroed by run() the first time this plan sees it. Runs
                                        // sharing a workspace must be stream-ordered.
  void* stream = nullptr;               // cudaStream_t
};

class DecodePlan {
 public:
  // Codecs: fp16/fp16, tqB/tqB (B = 1..8), tq(B+1)/tqB (B = 2, 3), fp16 K with tq3 / tq4 V,
  // tqB.5/tqB.5 for B = 1..7, the prod (QJL) tqBp/tqBp for tq2p .. tq8p, and the fractional prod
  // tqB.5p/tqB.5p for tq1.5p .. tq7.5p; head_dim 64, 128, 256; GQA group <= 8. tq2.5/tq2.5 and
  // tq2.5p/tq2.5p at head_dim 64 (parts of 16 + 48 dims) run on CUDA cores in fp32
  // (decode_frac64.cu; version() 1). tq5..tq8, tq4.5 .. tq7.5 and the mse codes of tq6p .. tq8p and tq5.5p .. tq7.5p
  // (16..256 centroids) are scored in fp16 (centroid tables in shared memory, f16 tensor cores), not
  // int8; no mixed pairs among them.
  // Throws tq::Error(kUnsupported) for combinations without a kernel (never a silent fallback),
  // among them a prod codec paired with anything else (k3pv3, k4pv3p), mixed pairs with tq5..tq8
  // (k5v4, k8v6), v_quads with tq5..tq8 and the v1 kernel for prod, fractional and tq5..tq8.
  DecodePlan(const DecodeShape& shape, const CodecSpec& k_codec, const CodecSpec& v_codec);
  ~DecodePlan();
  DecodePlan(const DecodePlan&) = delete;
  DecodePlan& operator=(const DecodePlan&) = delete;

  size_t workspace_bytes() const;
  int splits() const;  // v3: CTAs of the persistent wave; v1: KV splits per sequence
  // True when the tensor-core kernel (fp16 operands: q, centroids, p) serves this plan.
  bool uses_tensor_cores() const;
  // True when TurboQuant K is scored in int8 (v3, tq1..tq4, tq1.5 .. tq3.5, tq2p .. tq5p, tq1.5p ..
  // tq4.5p; tq5..tq8,
  // tq4.5 .. tq7.5, tq6p .. tq8p and tq5.5p .. tq7.5p are scored in fp16): q rounded to int8 per row (in the rotated
  // domain, scale max|q|/127), centroids to int8 (scale max|c|/127). On attention with peaked
  // scores this adds ~1-2% relative error to the output (the codec's own is 10-25%); docs/CUDA.md.
  bool int8_scores() const;
  // 3 (default) or 1 (CUDA-core kernels: the reference ones, forced with TQ_CUDA_DECODE_V1=1 at plan
  // time, and always those of tq2.5 / tq2.5p at head_dim 64).
  int version() const;
  KvPageLayout k_layout() const;  // page layout the pools must follow
  KvPageLayout v_layout() const;
  // Codec objects whose encode() produces the bytes the pools must hold (same seeds).
  const Codec& k_codec() const;
  const Codec& v_codec() const;
  void run(const DecodeArgs& args) const;
  // Synchronously reads and clears the device error flag accumulated by the runs since the last
  // read (bit 0: a seq_len < 0 or > max_seq_len, bit 1: a page id outside the pool); the rows
  // concerned attend to nothing (zeros) instead of reading out of bounds.
  int read_error_flag(const void* workspace) const;

  struct Impl;
 private:
  std::unique_ptr<Impl> impl_;
};

bool device_available();

}  // namespace tq::cuda
