// src/cuda/decode_frac64.cu — the decode kernels of tq2.5 / tq2.5p at head_dim 64 (decode_frac64.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda/decode_frac64.h"
#include "cuda/core_decode_util.cuh"

namespace tq::cuda::frac64 {
namespace {

// The 18-byte codes section at p (2-byte aligned) into r[0..18).
__device__ __forceinline__ void load_row(const uint8_t* p, uint8_t (&r)[20]) {
  const uint16_t* s = reinterpret_cast<const uint16_t*>(p);
#pragma unroll
  for (int k = 0; k < 9; ++k) {
    const uint16_t v = s[k];
    r[2 * k] = uint8_t(v);
    r[2 * k + 1] = uint8_t(v >> 8);
  }
  r[18] = r[19] = 0;
}

// In-place orthonormal FWHT of x[0..16) in shared memory; every thread of the block calls it.
__device__ __forceinline__ void fwht16(float* x) {
  const int i = threadIdx.x;
#pragma unroll
  for (int h = 1; h < kM0; h <<= 1) {
    float a = 0.f, b = 0.f;
    int j = 0;
    if (i < kM0 / 2) {
      j = (i / h) * 2 * h + (i % h);
      a = x[j];
      b = x[j + h];
    }
    __syncthreads();
    if (i < kM0 / 2) {
      x[j] = a + b;
      x[j + h] = a - b;
    }
    __syncthreads();
  }
  if (i < kM0) x[i] *= 0.25f;
  __syncthreads();
}

// 1. q [B, Hq, 64] -> q_rot [B, Hq, row_floats]: r = (R_0 q_0, R_1 q_1) · scale; prod: then
// s = (S_0 r_0, S_1 r_1). Grid B * Hq, block 64.
template <typename T, bool PROD>
__global__ void __launch_bounds__(kThreads) frac64_q(const T* __restrict__ q, const Tables* __restrict__ kt, float scale,
                                                     float* __restrict__ q_rot) {
  __shared__ float x[kD], r[kD];
  const size_t row = blockIdx.x;
  const int i = threadIdx.x;
  x[i] = to_f32(q[row * kD + i]) * scale;
  __syncthreads();
#pragma unroll 1
  for (int rd = 0; rd < 3; ++rd) {  // part 0: y = H D3 H D2 H D1 x_0
    if (i < kM0) x[i] *= kt->sign0[rd][i];
    __syncthreads();
    fwht16(x);
  }
  if (i >= kM0) {  // part 1: y_i = sum_j M[i][j] x_j
    const float* m = kt->m1 + (i - kM0) * kM1;
    float acc = 0.f;
    for (int j = 0; j < kM1; ++j) acc = fmaf(__ldg(m + j), x[kM0 + j], acc);
    r[i] = acc;
  } else {
    r[i] = x[i];
  }
  __syncthreads();
  float* out = q_rot + row * row_floats(PROD);
  out[i] = r[i];
  if constexpr (PROD) {
    const bool p0 = i < kM0;
    const float* s = p0 ? kt->s0 + i * kM0 : kt->s1 + (i - kM0) * kM1;
    const float* rp = p0 ? r : r + kM0;
    const int m = p0 ? kM0 : kM1;
    float acc = 0.f;
    for (int j = 0; j < m; ++j) acc = fmaf(__ldg(s + j), rp[j], acc);
    out[kD + i] = acc;
  }
}

// 2. Split-KV: grid (splits, Hkv, B), block 64.
template <bool PROD, int MAXG>
__global__ void __launch_bounds__(kThreads) frac64_split(const Launch P) {
  constexpr TqLayout L = append::frac64_layout(PROD);
  constexpr int B0 = int(L.part[0].mse_bits), B1 = int(L.part[1].mse_bits);
  constexpr int MO1 = int(L.part[1].mse_offset), QO0 = int(L.part[0].qjl_offset), QO1 = int(L.part[1].qjl_offset);
  constexpr int QR = row_floats(PROD), NS = PROD ? 4 : 2;  // q floats per head, scalars per token
  __shared__ float q_s[QR][MAXG];
  __shared__ float p_s[kTile][MAXG];
  __shared__ float red[kThreads / 32][MAXG];
  __shared__ float tile_stat[MAXG];
  __shared__ uint8_t v_rows[kTile][20];
  __shared__ float v_sc[kTile][NS];  // n_0, (γ_0), n_1, (γ_1)
  __shared__ float kcent[12], vcent[12];
  const int split = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int G = P.Hq / P.Hkv;
  int len = P.seq_lens[b];
  if (len < 0 || len > P.max_seq_len) {  // bad length: flag it, attend to nothing
    if (tid == 0) atomicOr(P.error_flag, 1);
    len = 0;
  }
  const int t0 = split * P.chunk, t1 = min(len, t0 + P.chunk);
  for (int i = tid; i < QR * MAXG; i += kThreads) {
    const int c = i / MAXG, g = i % MAXG;
    q_s[c][g] = g < G ? P.q_rot[(size_t(b) * P.Hq + hk * G + g) * QR + c] : 0.f;
  }
  if (tid < 12) {
    kcent[tid] = tid < 8 ? P.kt->cent0[tid] : P.kt->cent1[tid - 8];
    vcent[tid] = tid < 8 ? P.vt->cent0[tid] : P.vt->cent1[tid - 8];
  }
  const float kk0 = PROD ? P.kt->kappa0 : 0.f, kk1 = PROD ? P.kt->kappa1 : 0.f;  // V's kappas: in the merge
  __syncthreads();

  // This thread's V coordinate: part p, index j in the part.
  const int vp = tid < kM0 ? 0 : 1, vj = tid < kM0 ? tid : tid - kM0;
  float m[MAXG], l[MAXG], acc[MAXG], acc2[MAXG];
#pragma unroll
  for (int g = 0; g < MAXG; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
    acc[g] = 0.f;
    acc2[g] = 0.f;
  }
  const uint32_t kpage = P.kl.page_bytes(), vpage = P.vl.page_bytes();
  for (int tb = t0; tb < t1; tb += kTile) {
    const int n_tile = min(kTile, t1 - tb);
    const int page = P.page_table[size_t(b) * P.max_pages + tb / int(P.kl.page_tokens)];
    if (page < 0 || page >= P.num_pages) {  // bad page id: flag it, skip the tile (uniform branch)
      if (tid == 0) atomicOr(P.error_flag, 2);
      continue;
    }
    const int off0 = tb % int(P.kl.page_tokens);  // tiles never straddle pages (page_tokens % 64 == 0)
    const uint8_t* kbase = P.k_pool + size_t(page) * kpage;
    const uint8_t* vbase = P.v_pool + size_t(page) * vpage;
    const bool valid = tid < n_tile;
    // ---- V rows and scalars of the tile into shared memory ----
    if (valid) {
      uint8_t r[20];
      load_row(vbase + P.vl.codes_offset(hk, off0 + tid), r);
#pragma unroll
      for (int k = 0; k < 20; ++k) v_rows[tid][k] = r[k];
      const uint8_t* sc = vbase + P.vl.scalars_offset(hk, off0 + tid);
#pragma unroll
      for (int k = 0; k < NS; ++k) v_sc[tid][k] = half_at(sc + 2 * k);
    }
    // ---- scores: thread = token ----
    float s[MAXG];
#pragma unroll
    for (int g = 0; g < MAXG; ++g) s[g] = 0.f;
    if (valid) {
      uint8_t r[20];
      load_row(kbase + P.kl.codes_offset(hk, off0 + tid), r);
      const uint8_t* sc = kbase + P.kl.scalars_offset(hk, off0 + tid);
      float a0[MAXG], a1[MAXG];
#pragma unroll
      for (int g = 0; g < MAXG; ++g) a0[g] = a1[g] = 0.f;
#pragma unroll 4
      for (int j = 0; j < kM0; ++j) {
        const float c = kcent[code_at(r, 0, kM0, B0, j)];
#pragma unroll
        for (int g = 0; g < MAXG; ++g) a0[g] = fmaf(q_s[j][g], c, a0[g]);
      }
#pragma unroll 4
      for (int j = 0; j < kM1; ++j) {
        const float c = kcent[8 + code_at(r, MO1, kM1, B1, j)];
#pragma unroll
        for (int g = 0; g < MAXG; ++g) a1[g] = fmaf(q_s[kM0 + j][g], c, a1[g]);
      }
      if constexpr (PROD) {
        const float n0 = half_at(sc), g0 = half_at(sc + 2), n1 = half_at(sc + 4), g1 = half_at(sc + 6);
        float z0[MAXG], z1[MAXG];
#pragma unroll
        for (int g = 0; g < MAXG; ++g) z0[g] = z1[g] = 0.f;
#pragma unroll 4
        for (int j = 0; j < kM0; ++j) {
          const float sg = code_at(r, QO0, kM0, 1, j) ? 1.f : -1.f;
#pragma unroll
          for (int g = 0; g < MAXG; ++g) z0[g] = fmaf(q_s[kD + j][g], sg, z0[g]);
        }
#pragma unroll 4
        for (int j = 0; j < kM1; ++j) {
          const float sg = code_at(r, QO1, kM1, 1, j) ? 1.f : -1.f;
#pragma unroll
          for (int g = 0; g < MAXG; ++g) z1[g] = fmaf(q_s[kD + kM0 + j][g], sg, z1[g]);
        }
#pragma unroll
        for (int g = 0; g < MAXG; ++g)
          s[g] = n0 * (a0[g] + kk0 * g0 * z0[g]) + n1 * (a1[g] + kk1 * g1 * z1[g]);
      } else {
        const float n0 = half_at(sc), n1 = half_at(sc + 2);
#pragma unroll
        for (int g = 0; g < MAXG; ++g) s[g] = n0 * a0[g] + n1 * a1[g];
      }
    }
#pragma unroll
    for (int g = 0; g < MAXG; ++g)
      if (!valid || g >= G) s[g] = -INFINITY;

    // ---- online softmax over the tile (block max, then block sum) ----
    warp_reduce_rows<true>(s, red, warp, lane);
    __syncthreads();
    if (tid < MAXG) tile_stat[tid] = fmaxf(red[0][tid], red[1][tid]);
    __syncthreads();
    float alpha[MAXG], mnew[MAXG];
#pragma unroll
    for (int g = 0; g < MAXG; ++g) {
      mnew[g] = fmaxf(m[g], tile_stat[g]);
      alpha[g] = m[g] == -INFINITY ? 0.f : expf(m[g] - mnew[g]);
      m[g] = mnew[g];
    }
    float psum[MAXG];
#pragma unroll
    for (int g = 0; g < MAXG; ++g) {
      const float p = (valid && g < G) ? expf(s[g] - mnew[g]) : 0.f;
      psum[g] = p;
      p_s[tid][g] = p;
    }
    __syncthreads();  // red / tile_stat read; p_s, v_rows, v_sc visible
    warp_reduce_rows<false>(psum, red, warp, lane);
    __syncthreads();
#pragma unroll
    for (int g = 0; g < MAXG; ++g) {
      l[g] = l[g] * alpha[g] + (red[0][g] + red[1][g]);
      acc[g] *= alpha[g];
      acc2[g] *= alpha[g];
    }
    // ---- V: thread = coordinate tid (part vp, index vj) ----
    for (int t = 0; t < n_tile; ++t) {
      const uint8_t* vr = v_rows[t];
      const float n = v_sc[t][PROD ? 2 * vp : vp];
      const float cv =
          vp == 0 ? vcent[code_at(vr, 0, kM0, B0, vj)] : vcent[8 + code_at(vr, MO1, kM1, B1, vj)];
      const float w = n * cv;
      float w2 = 0.f;
      if constexpr (PROD) {
        const uint32_t sb = vp == 0 ? code_at(vr, QO0, kM0, 1, vj) : code_at(vr, QO1, kM1, 1, vj);
        const float ng = n * v_sc[t][2 * vp + 1];
        w2 = sb ? ng : -ng;
      }
#pragma unroll
      for (int g = 0; g < MAXG; ++g) {
        const float p = p_s[t][g];
        acc[g] = fmaf(p, w, acc[g]);
        if constexpr (PROD) acc2[g] = fmaf(p, w2, acc2[g]);
      }
    }
    __syncthreads();  // p_s / v_rows / v_sc are rewritten by the next tile
  }
  // ---- partial state of this split ----
#pragma unroll
  for (int g = 0; g < MAXG; ++g) {
    if (g < G) {
      const size_t row = (size_t(b) * P.Hq + hk * G + g) * P.splits + split;
      P.part_o[row * QR + tid] = acc[g];
      if constexpr (PROD) P.part_o[row * QR + kD + tid] = acc2[g];
      if (tid == 0) {
        P.part_ml[row * 2 + 0] = m[g];
        P.part_ml[row * 2 + 1] = l[g];
      }
    }
  }
}

// 3. Merge the splits of one (b, h) row, fold the QJL term (prod), undo the V rotation; grid
// B * Hq, block 64.
template <typename T, bool PROD>
__global__ void __launch_bounds__(kThreads) frac64_merge(const float* __restrict__ part_o, const float* __restrict__ part_ml,
                                                         int splits, const Tables* __restrict__ vt, T* __restrict__ out) {
  constexpr int QR = row_floats(PROD);
  __shared__ float x[kD], x2[kD], y[kD];
  const size_t row = blockIdx.x;
  const int i = threadIdx.x;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, part_ml[(row * splits + s) * 2]);
  float num = 0.f, num2 = 0.f, den = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float ms = part_ml[(row * splits + s) * 2];
    if (ms == -INFINITY) continue;  // empty split
    const float w = expf(ms - M);
    den += w * part_ml[(row * splits + s) * 2 + 1];
    num += w * part_o[(row * splits + s) * QR + i];
    if constexpr (PROD) num2 += w * part_o[(row * splits + s) * QR + kD + i];
  }
  x[i] = den > 0.f ? num / den : 0.f;
  x2[i] = den > 0.f ? num2 / den : 0.f;
  __syncthreads();
  if constexpr (PROD) {  // x_p += kappa_p S_p^T x2_p
    const bool p0 = i < kM0;
    const int m = p0 ? kM0 : kM1, j = p0 ? i : i - kM0, f = p0 ? 0 : kM0;
    const float* s = p0 ? vt->s0 : vt->s1;
    float acc = 0.f;
    for (int r = 0; r < m; ++r) acc = fmaf(__ldg(s + r * m + j), x2[f + r], acc);
    const float v = x[i] + (p0 ? vt->kappa0 : vt->kappa1) * acc;
    __syncthreads();
    x[i] = v;
    __syncthreads();
  }
  // part 1: y_j = sum_i M[i][j] x_i (R^T); part 0: x_0 = D1 H D2 H D3 H x_0
  if (i >= kM0) {
    const int j = i - kM0;
    float acc = 0.f;
    for (int r = 0; r < kM1; ++r) acc = fmaf(__ldg(vt->m1 + r * kM1 + j), x[kM0 + r], acc);
    y[i] = acc;
  }
#pragma unroll 1
  for (int rd = 2; rd >= 0; --rd) {
    fwht16(x);
    if (i < kM0) x[i] *= vt->sign0[rd][i];
    __syncthreads();
  }
  out[row * kD + i] = from_f32<T>(i < kM0 ? x[i] : y[i]);
}

template <bool PROD, int MAXG>
cudaError_t launch_all(const Launch& a) {
  cudaStream_t st = static_cast<cudaStream_t>(a.stream);
  const int rows = a.B * a.Hq;
  switch (a.q_dtype) {
    case 0: frac64_q<float, PROD><<<rows, kThreads, 0, st>>>(static_cast<const float*>(a.q), a.kt, a.scale, a.q_rot); break;
    case 1: frac64_q<__half, PROD><<<rows, kThreads, 0, st>>>(static_cast<const __half*>(a.q), a.kt, a.scale, a.q_rot); break;
    default:
      frac64_q<__nv_bfloat16, PROD><<<rows, kThreads, 0, st>>>(static_cast<const __nv_bfloat16*>(a.q), a.kt, a.scale, a.q_rot);
  }
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  frac64_split<PROD, MAXG><<<dim3(a.splits, a.Hkv, a.B), kThreads, 0, st>>>(a);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  switch (a.out_dtype) {
    case 0: frac64_merge<float, PROD><<<rows, kThreads, 0, st>>>(a.part_o, a.part_ml, a.splits, a.vt, static_cast<float*>(a.out)); break;
    case 1: frac64_merge<__half, PROD><<<rows, kThreads, 0, st>>>(a.part_o, a.part_ml, a.splits, a.vt, static_cast<__half*>(a.out)); break;
    default:
      frac64_merge<__nv_bfloat16, PROD>
          <<<rows, kThreads, 0, st>>>(a.part_o, a.part_ml, a.splits, a.vt, static_cast<__nv_bfloat16*>(a.out));
  }
  return cudaGetLastError();
}

const void* split_fn(bool prod, int max_group) {
  if (prod) return max_group <= 4 ? reinterpret_cast<const void*>(&frac64_split<true, 4>) : reinterpret_cast<const void*>(&frac64_split<true, 8>);
  return max_group <= 4 ? reinterpret_cast<const void*>(&frac64_split<false, 4>) : reinterpret_cast<const void*>(&frac64_split<false, 8>);
}

}  // namespace

int blocks_per_sm(bool prod, int max_group) {
  int n = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, split_fn(prod, max_group), kThreads, 0) != cudaSuccess) return 0;
  return n;
}

int run(const Launch& a) {
  if (a.prod) return int(a.max_group <= 4 ? launch_all<true, 4>(a) : launch_all<true, 8>(a));
  return int(a.max_group <= 4 ? launch_all<false, 4>(a) : launch_all<false, 8>(a));
}

}  // namespace tq::cuda::frac64
