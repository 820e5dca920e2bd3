// src/cuda/decode_v3_fprod_d64.cu — v3 decode kernels of the fractional prod codecs at head_dim 64
// (decode_fprod.cuh; their own file: parallel builds, the other kernels' files do not grow).
#include "cuda/decode_v3_table.cuh"

namespace tq::cuda::v3 {

const void* kernel_fprod_d64(int kb, int vb) { return kernel_fprod_table<64>(kb, vb); }

}  // namespace tq::cuda::v3
