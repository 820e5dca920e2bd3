// src/kv/attn_kernels.h — the SIMD primitives of the fused CPU attention (Highway, runtime
// dispatch to the best target of the running CPU; see attn_kernels_hwy.cpp).
//
// Everything works on R query rows against n consecutive stored tokens of one KV head:
//   dot_*  s[r*ld_s + t]  = Σ_j q[r*ld_q + j] · x_t[j]           (scores)
//   acc_*  a[r*ld_a + j] += Σ_t w[r*ld_w + t] · x_t[j]            (V accumulation)
// where x_t is either a stored row (float32 / float16 / bfloat16, D values) or the table lookup
// table[code_{t,j}] of a token's packed b-bit codes (group-plane packing of layout.h, m codes).
//
// Code kernels see coordinates in "kernel order": the unpacking of a 32-code group yields codes in
// a fixed permutation that is cheap to produce (kernel_order(bits, m)); q is laid out in that order
// and accumulators come back in it. Attention is invariant to a common permutation of q and k,
// and the engine undoes it once per output row.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "turboquant/npy.h"

namespace tq::kv {

// Kernel position -> coordinate, for a part of m coordinates packed at `bits` bits.
std::vector<int> kernel_order(int bits, int m);
// Name of the SIMD target the kernels dispatch to on this CPU (e.g. "AVX3").
const char* kernel_target();

// n tokens spread over pages: segment i holds count[i] consecutive tokens, token k of it at
// base[i] + k*stride (+ the byte offset a kernel is given). One kernel call covers a whole block
// of tokens whatever the page size, so per-call setup is paid once per block.
struct TokenRun {
  const uint8_t* const* base = nullptr;
  const int* count = nullptr;
  int nseg = 0;
  size_t stride = 0;
  int n = 0;  // total tokens
};

// One contiguous segment as a run (keep the object alive while the run is used).
struct OneSegment {
  const uint8_t* base;
  int count;
  size_t stride;
  TokenRun run() const { return TokenRun{&base, &count, 1, stride, count}; }
};

// Codes of each token at its pointer + off; table: 2^bits floats (centroids, or {-1, +1} for QJL signs).
void dot_codes(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* q, size_t ld_q,
               int R, float* s, size_t ld_s);
void acc_codes(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* w, size_t ld_w,
               int R, float* acc, size_t ld_a);

// Rows of D values of dtype (kF32 / kF16 / kBF16) at each token's pointer.
void dot_rows(DType dt, int D, const TokenRun& tr, const float* q, size_t ld_q, int R, float* s, size_t ld_s);
void acc_rows(DType dt, int D, const TokenRun& tr, const float* w, size_t ld_w, int R, float* acc, size_t ld_a);

// out[t] = the fp16 / fp32 value at token t's pointer + off (norms and gammas of the scalars section).
void load_scalars(const TokenRun& tr, size_t off, bool fp32, float* out);

// Online-softmax step of one row over n scores (in place): returns the block max; s[t] becomes
// exp(s[t] - m_new) with m_new = max(m_old, block max), or 0 for s[t] = -inf. *sum gets Σ s[t].
float softmax_block(float* s, int n, float m_old, float* m_new, float* sum);
// x[0..n) *= a
void scale_row(float* x, size_t n, float a);
// y[t] = x[t] * c[t]
void mul_rows(const float* x, const float* c, int n, float* y);
// y[t] += x[t] * c[t]
void mul_add_rows(const float* x, const float* c, int n, float* y);

}  // namespace tq::kv
