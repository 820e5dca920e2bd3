// src/cuda/append.cu — instantiations of the append kernel (head_dim 64/128/256 x fp16, tq2/3/4).
#include "cuda/append.cuh"

namespace tq::cuda::append {

const void* append_kernel_for(int d, int bits) {
#define TQ_CASE(D, B) \
  if (d == D && bits == B) return reinterpret_cast<const void*>(&append_kernel<D, B>);
  TQ_CASE(64, 0) TQ_CASE(64, 2) TQ_CASE(64, 3) TQ_CASE(64, 4)
  TQ_CASE(128, 0) TQ_CASE(128, 2) TQ_CASE(128, 3) TQ_CASE(128, 4)
  TQ_CASE(256, 0) TQ_CASE(256, 2) TQ_CASE(256, 3) TQ_CASE(256, 4)
#undef TQ_CASE
  return nullptr;
}

}  // namespace tq::cuda::append
