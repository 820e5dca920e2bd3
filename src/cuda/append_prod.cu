// src/cuda/append_prod.cu — instantiations of the prod append kernel (append_prod.cuh): tq2p .. tq5p
// (mse bits 1 .. 7) at head_dim 64/128/256, input f32/f16/bf16.
#include "cuda/append_prod.cuh"

namespace tq::cuda::append {

const void* append_prod_kernel_for(int d, int mse_bits, int in_dtype) {
#define TQ_CASE(D, B, T) \
  if (d == D && mse_bits == B && in_dtype == T) return reinterpret_cast<const void*>(&append_prod_kernel<D, B, T>);
#define TQ_DTYPES(D, B) TQ_CASE(D, B, 0) TQ_CASE(D, B, 1) TQ_CASE(D, B, 2)
  TQ_DTYPES(64, 1) TQ_DTYPES(128, 1) TQ_DTYPES(256, 1)
  TQ_DTYPES(64, 2) TQ_DTYPES(128, 2) TQ_DTYPES(256, 2)
  TQ_DTYPES(64, 3) TQ_DTYPES(128, 3) TQ_DTYPES(256, 3)
  TQ_DTYPES(64, 4) TQ_DTYPES(128, 4) TQ_DTYPES(256, 4)
  // tq6p .. tq8p: wide mse codes (search_wide).
  TQ_DTYPES(64, 5) TQ_DTYPES(128, 5) TQ_DTYPES(256, 5)
  TQ_DTYPES(64, 6) TQ_DTYPES(128, 6) TQ_DTYPES(256, 6)
  TQ_DTYPES(64, 7) TQ_DTYPES(128, 7) TQ_DTYPES(256, 7)
#undef TQ_DTYPES
#undef TQ_CASE
  return nullptr;
}

}  // namespace tq::cuda::append
