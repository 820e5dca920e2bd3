// src/cuda/append_fprod.cu — instantiations of the fractional prod append kernel (append_fprod.cuh):
// tq2.5p at head_dim 128/256 (part 0 of D/4 = 16 dims at 64 is not a whole code group), tq1.5p and
// tq3.5p .. tq7.5p at 64/128/256, input f32/f16/bf16.
#include "cuda/append_fprod.cuh"

namespace tq::cuda::append {

const void* append_fprod_kernel_for(int d, int bits, int in_dtype) {
#define TQ_CASE(D, B, T) \
  if (d == D && bits == B && in_dtype == T) return reinterpret_cast<const void*>(&append_fprod_kernel<D, B, T>);
#define TQ_DTYPES(D, B) TQ_CASE(D, B, 0) TQ_CASE(D, B, 1) TQ_CASE(D, B, 2)
  TQ_DTYPES(128, 2) TQ_DTYPES(256, 2)
  TQ_DTYPES(64, 3) TQ_DTYPES(128, 3) TQ_DTYPES(256, 3)
  TQ_DTYPES(64, 4) TQ_DTYPES(128, 4) TQ_DTYPES(256, 4)
  TQ_DTYPES(64, 1) TQ_DTYPES(128, 1) TQ_DTYPES(256, 1)  // tq1.5p: part 1 without mse codes
  TQ_DTYPES(64, 5) TQ_DTYPES(128, 5) TQ_DTYPES(256, 5)  // tq5.5p .. tq7.5p: 5..7-bit parts by search_wide
  TQ_DTYPES(64, 6) TQ_DTYPES(128, 6) TQ_DTYPES(256, 6)
  TQ_DTYPES(64, 7) TQ_DTYPES(128, 7) TQ_DTYPES(256, 7)
#undef TQ_DTYPES
#undef TQ_CASE
  return nullptr;
}

}  // namespace tq::cuda::append
