// src/cuda/decode_v3_d256.cu — v3 decode kernels for head_dim 256 (one file per head_dim: parallel builds).
#include "cuda/decode_v3.cuh"

namespace tq::cuda::v3 {

const void* kernel_d256(int kb, int vb, int frac, int prod, int qv) {
#define TQ_QV(B) \
  if (qv && !frac && !prod && kb == B && vb == B) return reinterpret_cast<const void*>(&decode_kernel<256, B, B, 0, 0, 1>);
  TQ_QV(2) TQ_QV(3) TQ_QV(4)
#undef TQ_QV
  if (qv) return nullptr;
#define TQ_CASE(K, V) \
  if (!frac && !prod && kb == K && vb == V) return reinterpret_cast<const void*>(&decode_kernel<256, K, V, 0>);
#define TQ_FRAC(B) \
  if (frac && !prod && kb == B && vb == B) return reinterpret_cast<const void*>(&decode_kernel<256, B, B, 1>);
  TQ_CASE(0, 0) TQ_CASE(1, 1) TQ_CASE(2, 2) TQ_CASE(3, 3) TQ_CASE(4, 4) TQ_CASE(3, 2) TQ_CASE(4, 3) TQ_CASE(0, 3) TQ_CASE(0, 4)
  TQ_FRAC(2) TQ_FRAC(3)
#define TQ_PROD(B) \
  if (!frac && prod == 3 && kb == B && vb == B) return reinterpret_cast<const void*>(&decode_kernel<256, B, B, 0, 3>);
  TQ_PROD(1) TQ_PROD(2) TQ_PROD(3)
#undef TQ_PROD
#undef TQ_FRAC
#undef TQ_CASE
  return nullptr;
}

}  // namespace tq::cuda::v3
