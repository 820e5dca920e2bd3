// src/model/llama_kernels.cu — the llama forward pass's own CUDA kernels (llama_kernels.h). Simple
// kernels: a forward step of a small model is launch-bound, and these are memory-bound elementwise or
// per-row work; correctness against ops.cpp comes first (same double sums, same RoPE factors,
// no FMA contraction where the CPU rounds each product).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "model/llama_kernels.h"

namespace tq::model::cudak {
namespace {

constexpr int kThreads = 256;

int grid_for(int64_t count) {
  const int64_t b = (count + kThreads - 1) / kThreads;
  return int(b < 65535 ? (b > 0 ? b : 1) : 65535);  // grid-stride loops cover the rest
}

// grid (n), block kThreads: row t.
__global__ void embed_kernel(const float* __restrict__ emb, const int32_t* __restrict__ tokens, float* __restrict__ x,
                             int dim) {
  const int t = blockIdx.x;
  const float* src = emb + int64_t(tokens[t]) * dim;
  float* dst = x + int64_t(t) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = src[i];
}

// Block-wide sum of double (blockDim.x a multiple of 32, <= 1024); every thread gets the total.
__device__ double block_sum(double v) {
  __shared__ double part[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[w] = v;
  __syncthreads();
  double s = 0;
  for (int i = 0; i < int(blockDim.x >> 5); ++i) s += part[i];
  return s;
}

__device__ float block_max(float v) {
  __shared__ float part[32];
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) part[w] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int i = 0; i < int(blockDim.x >> 5); ++i) m = fmaxf(m, part[i]);
  return m;
}

// grid (n), block kThreads: row t of x [n, dim].
__global__ void rmsnorm_kernel(const float* x, const float* __restrict__ g, float eps, float* y, int dim) {
  const float* xr = x + int64_t(blockIdx.x) * dim;
  float* yr = y + int64_t(blockIdx.x) * dim;
  double ss = 0;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += double(xr[i]) * double(xr[i]);
  ss = block_sum(ss);  // ends with a barrier: every read of the row precedes the first write
  const float r = float(1.0 / sqrt(ss / dim + double(eps)));
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = __fmul_rn(__fmul_rn(xr[i], r), g[i]);
}

// grid (n), block kThreads: token t; threads over (head, pair) of x [n, H, hd].
__global__ void rope_kernel(float* x, const float* __restrict__ cs, int H, int hd, int half, int pos0) {
  const int t = blockIdx.x;
  const float* f = cs + int64_t(pos0 + t) * half * 2;
  for (int j = threadIdx.x; j < H * half; j += blockDim.x) {
    const int h = j / half, i = j % half;
    float* v = x + (int64_t(t) * H + h) * hd + 2 * i;
    const float c = f[2 * i], s = f[2 * i + 1], x0 = v[0], x1 = v[1];
    v[0] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
    v[1] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
  }
}

// grid-stride over y [n, width].
__global__ void add_bias_kernel(float* y, const float* __restrict__ b, int64_t count, int width) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += b[i % width];
}

// grid-stride over g [count].
__global__ void swiglu_kernel(float* g, const float* __restrict__ u, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const float a = g[i];
    g[i] = __fmul_rn(__fdiv_rn(a, __fadd_rn(1.0f, expf(-a))), u[i]);
  }
}

// grid-stride over x [count].
__global__ void to_16bit_kernel(const float* __restrict__ x, void* y, int64_t count, bool bf16) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    if (bf16) static_cast<__nv_bfloat16*>(y)[i] = __float2bfloat16_rn(x[i]);
    else static_cast<__half*>(y)[i] = __float2half_rn(x[i]);
  }
}

__global__ void iota_kernel(int32_t* out, int n, int start) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = start + i;
}

// grid (Hq, n), block kThreads, dynamic shared memory: q row [hd] + scores [last + 1].
// Query i, head h: scores over positions 0..last (one thread per position, strided), softmax, then
// one thread per output dim sums p_j v[j] over the positions (coalesced along hd).
__global__ void attention_exact_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                       const float* __restrict__ v, float* __restrict__ out, int n, int len, int Hq,
                                       int Hkv, int hd, float scale) {
  extern __shared__ float smem[];
  float* qs = smem;       // [hd]
  float* p = smem + hd;   // [last + 1]
  const int h = blockIdx.x, i = blockIdx.y, kvh = h / (Hq / Hkv), last = len - n + i;
  const float* qi = q + (int64_t(i) * Hq + h) * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qi[d];
  __syncthreads();
  float m = -INFINITY;
  for (int j = threadIdx.x; j <= last; j += blockDim.x) {
    const float* kj = k + (int64_t(j) * Hkv + kvh) * hd;
    float s = 0;
    for (int d = 0; d < hd; ++d) s += qs[d] * kj[d];
    p[j] = s * scale;
    m = fmaxf(m, p[j]);
  }
  m = block_max(m);
  double z = 0;
  for (int j = threadIdx.x; j <= last; j += blockDim.x) z += (p[j] = expf(p[j] - m));
  z = block_sum(z);  // its barriers also publish p[]
  const float inv = float(1.0 / z);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0;
    for (int j = 0; j <= last; ++j) acc += p[j] * v[(int64_t(j) * Hkv + kvh) * hd + d];
    out[(int64_t(i) * Hq + h) * hd + d] = acc * inv;
  }
}

}  // namespace

int embed(const float* emb, const int32_t* tokens, float* x, int n, int dim) {
  embed_kernel<<<n, kThreads>>>(emb, tokens, x, dim);
  return int(cudaGetLastError());
}

int rmsnorm(const float* x, const float* g, float eps, float* y, int n, int dim) {
  rmsnorm_kernel<<<n, kThreads>>>(x, g, eps, y, dim);
  return int(cudaGetLastError());
}

int rope(float* x, const float* cs, int n, int H, int hd, int n_rot, int pos0) {
  if (n_rot == 0) return 0;
  rope_kernel<<<n, kThreads>>>(x, cs, H, hd, n_rot / 2, pos0);
  return int(cudaGetLastError());
}

int add_bias(float* y, const float* b, int n, int width) {
  const int64_t count = int64_t(n) * width;
  add_bias_kernel<<<grid_for(count), kThreads>>>(y, b, count, width);
  return int(cudaGetLastError());
}

int swiglu(float* g, const float* u, int64_t count) {
  swiglu_kernel<<<grid_for(count), kThreads>>>(g, u, count);
  return int(cudaGetLastError());
}

int to_16bit(const float* x, void* y, int64_t count, bool bf16) {
  to_16bit_kernel<<<grid_for(count), kThreads>>>(x, y, count, bf16);
  return int(cudaGetLastError());
}

int iota(int32_t* out, int n, int start) {
  iota_kernel<<<grid_for(n), kThreads>>>(out, n, start);
  return int(cudaGetLastError());
}

int attention_exact(const float* q, const float* k, const float* v, float* out, int n, int len, int Hq, int Hkv,
                    int hd, float scale) {
  if (n < 1 || n > len || len > kExactMaxLen || Hkv < 1 || Hq % Hkv != 0) return int(cudaErrorInvalidValue);
  const size_t smem = sizeof(float) * size_t(hd + len);
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(attention_exact_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               int(smem));
    if (e != cudaSuccess) return int(e);
  }
  attention_exact_kernel<<<dim3(unsigned(Hq), unsigned(n)), kThreads, smem>>>(q, k, v, out, n, len, Hq, Hkv, hd,
                                                                                scale);
  return int(cudaGetLastError());
}

}  // namespace tq::model::cudak
