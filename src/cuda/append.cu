// src/cuda/append.cu — instantiations of the append kernels: v1 (head_dim 64/128/256 x fp16, tq1/2/3/4)
// and v2 (head_dim x tq1..tq8 x input f32/f16/bf16, 32 coordinates per lane).
#include "cuda/append.cuh"

namespace tq::cuda::append {

const void* append_kernel_for(int d, int bits) {
#define TQ_CASE(D, B) \
  if (d == D && bits == B) return reinterpret_cast<const void*>(&append_kernel<D, B>);
  TQ_CASE(64, 0) TQ_CASE(64, 1) TQ_CASE(64, 2) TQ_CASE(64, 3) TQ_CASE(64, 4)
  TQ_CASE(128, 0) TQ_CASE(128, 1) TQ_CASE(128, 2) TQ_CASE(128, 3) TQ_CASE(128, 4)
  TQ_CASE(256, 0) TQ_CASE(256, 1) TQ_CASE(256, 2) TQ_CASE(256, 3) TQ_CASE(256, 4)
#undef TQ_CASE
  return nullptr;
}

const void* append_tile_kernel_for(int d, int c, int bits, int in_dtype) {
#define TQ_CASE(D, C, B, T) \
  if (d == D && c == C && bits == B && in_dtype == T) return reinterpret_cast<const void*>(&append_tile_kernel<D, C, B, T>);
#define TQ_DTYPES(D, C, B) TQ_CASE(D, C, B, 0) TQ_CASE(D, C, B, 1) TQ_CASE(D, C, B, 2)
#define TQ_BITS(D, C) TQ_DTYPES(D, C, 1) TQ_DTYPES(D, C, 2) TQ_DTYPES(D, C, 3) TQ_DTYPES(D, C, 4) \
  TQ_DTYPES(D, C, 5) TQ_DTYPES(D, C, 6) TQ_DTYPES(D, C, 7) TQ_DTYPES(D, C, 8)
  TQ_BITS(64, 32) TQ_BITS(128, 32) TQ_BITS(256, 32)  // C = 64 measured slower (docs/CUDA.md)
#undef TQ_BITS
#undef TQ_DTYPES
#undef TQ_CASE
  return nullptr;
}

}  // namespace tq::cuda::append
