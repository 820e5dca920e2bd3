// src/cuda/decode_v3_d64.cu — v3 decode kernels for head_dim 64 (one file per head_dim: parallel builds).
#include "cuda/decode_v3_table.cuh"

namespace tq::cuda::v3 {

const void* kernel_d64(int kb, int vb, int frac, int prod, int qv) { return kernel_table<64>(kb, vb, frac, prod, qv); }

}  // namespace tq::cuda::v3
