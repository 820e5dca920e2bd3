// src/cuda/core_decode_util.cuh — helpers shared by the CUDA-core decode kernels (v1,
// decode_kernels.cuh; tq2.5 / tq2.5p at D = 64, decode_frac64.cu): q / out dtype conversions, fp16
// scalar loads, and the per-row warp reductions of their block-level online softmax.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

namespace tq::cuda {

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// An fp16 scalar (norm, gamma) at a 2-byte aligned address, as float.
__device__ __forceinline__ float half_at(const uint8_t* p) { return __half2float(*reinterpret_cast<const __half*>(p)); }

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
