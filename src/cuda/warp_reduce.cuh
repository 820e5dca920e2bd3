// src/cuda/warp_reduce.cuh — per-row warp reductions of the CUDA-core decode kernels (v1,
// decode_kernels.cuh; tq2.5 / tq2.5p at D = 64, decode_frac64.cu): the tile max and sum steps of
// their block-level online softmax.
#pragma once

namespace tq::cuda {

// For each row g: the max (kMax) or the sum of v[g] over the warp's 32 lanes into red[warp][g]
// (written by lane 0; the caller's barrier publishes it).
template <bool kMax, int MAXG>
__device__ __forceinline__ void warp_reduce_rows(const float (&v)[MAXG], float (*red)[MAXG], int warp, int lane) {
#pragma unroll
  for (int g = 0; g < MAXG; ++g) {
    float x = v[g];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float y = __shfl_xor_sync(0xffffffffu, x, o);
      x = kMax ? fmaxf(x, y) : x + y;
    }
    if (lane == 0) red[warp][g] = x;
  }
}

}  // namespace tq::cuda
