// src/cuda/append_quad.cu — instantiations of the append kernels that write V in token quads
// (append.cuh, QUAD = true; AppendPlan token_quads): v1 and v2 at head_dim 64/128/256 x tq1/2/3/4
// (v2 x input f32/f16/bf16, 32 coordinates per lane). Apart from append.cu so the two compile in parallel.
#include "cuda/append.cuh"

namespace tq::cuda::append {

const void* append_quad_kernel_for(int d, int bits) {
#define TQ_CASE(D, B) \
  if (d == D && bits == B) return reinterpret_cast<const void*>(&append_kernel<D, B, true>);
  TQ_CASE(64, 1) TQ_CASE(64, 2) TQ_CASE(64, 3) TQ_CASE(64, 4)
  TQ_CASE(128, 1) TQ_CASE(128, 2) TQ_CASE(128, 3) TQ_CASE(128, 4)
  TQ_CASE(256, 1) TQ_CASE(256, 2) TQ_CASE(256, 3) TQ_CASE(256, 4)
#undef TQ_CASE
  return nullptr;
}

const void* append_quad_tile_kernel_for(int d, int c, int bits, int in_dtype) {
#define TQ_CASE(D, C, B, T) \
  if (d == D && c == C && bits == B && in_dtype == T) return reinterpret_cast<const void*>(&append_tile_kernel<D, C, B, T, true>);
#define TQ_DTYPES(D, C, B) TQ_CASE(D, C, B, 0) TQ_CASE(D, C, B, 1) TQ_CASE(D, C, B, 2)
#define TQ_BITS(D, C) TQ_DTYPES(D, C, 1) TQ_DTYPES(D, C, 2) TQ_DTYPES(D, C, 3) TQ_DTYPES(D, C, 4)
  TQ_BITS(64, 32) TQ_BITS(128, 32) TQ_BITS(256, 32)
#undef TQ_BITS
#undef TQ_DTYPES
#undef TQ_CASE
  return nullptr;
}

}  // namespace tq::cuda::append
