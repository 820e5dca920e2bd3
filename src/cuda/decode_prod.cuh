// src/cuda/decode_prod.cuh — the TurboQuant-prod (QJL) pieces of the v3 decode kernel
// (decode_v3.cuh), K and V both tq(B+1)p: B-bit mse codes, then one sign bit per coordinate
// (σ = ±1, stored as b = (σ + 1) / 2), scalars (norm n, gamma γ) per token; S the codec's D x D
// sketch, κ = qjl_kappa(D); decode is x̂ = n R^T (ĉ + κ γ S^T σ) (tq_codec.cpp).
//
// K: <q, x̂> = n (<Rq, ĉ> + κ γ <S Rq, σ>). The mse term is the tqB score of the kernel; q's
// sketch s = S·Rq is computed in the prologue (dense_part1 over the whole vector) and rounded to
// int8 per row like q, and <s, σ> = 2 <s, b> - Σ s is a second int8 mma on the 0/1 bits
// (frag::qjl_a: one shift and two ANDs per two A registers).
// V: Σ_t p_t x̂_t = R^T (Σ_t p_t n_t ĉ_t + κ S^T Σ_t p_t n_t γ_t σ_t): the QJL term is accumulated in
// the sketch domain, O2^T += Σ^T · (p n γ)^T (σ as fp16 ±1, frag::qjl_h2; a second set of fp32
// accumulators), and each warp folds it into its state before the segment epilogue,
// O += κ √D S^T O2 (tf32 mma, the matrix in fragment order from the plan): the epilogue (merge,
// inverse rotation) is the tqB one. (Folding once per output row would carry O2 through the merge
// of partials; per warp, the fold is D²/16·D/128 mma per warp and segment, ~128 at D = 128.)
#pragma once
#include <cuda_fp16.h>
#include <cstdint>

#include "cuda/decode_frac.cuh"
#include "cuda/decode_frag.h"
#include "cuda/decode_ptx.cuh"
#include "cuda/decode_v3_params.h"

namespace tq::cuda::v3 {

// Prologue, all consumer warps, q_s[h][D] holding the rotated, scaled q rows in fp32 (h < G): the
// sketches S·q_h (partial sums per warp in scr), then per row h (warp h % 4): with Q8, q_s rounded to
// int8 in place (scale · kdeq -> qsc[h], as the tqB path; the wide mse codes of tq6p .. tq8p keep q
// fp16, Q8 = false), the sketch rounded to int8 into scr[h][D]
// (scale · κ√D -> qsc[2 kMaxG + 2h], the sum of its int8 values -> qsc[2 kMaxG + 2h + 1]).
// sync(): the consumer warps' barrier.
template <int D, bool Q8, class Sync>
__device__ __forceinline__ void prod_q_prologue(const Params& P, float* q_s, float* scr, float* qsc, int G, int warp,
                                                int lane, Sync sync) {
  constexpr int E = D / 32;
  sync();
  dense_part1<D, 0>(P.ksk, q_s, scr, G, warp, lane);
  sync();
  for (int h = warp; h < G; h += kConsumers) {
    float x[E], s[E];
    float ax = 0.f, as = 0.f;
#pragma unroll
    for (int k = 0; k < E; ++k) {
      x[k] = q_s[h * D + 32 * k + lane];
      s[k] = 0.f;
#pragma unroll
      for (int w = 0; w < kConsumers; ++w) s[k] += scr[(w * G + h) * D + 32 * k + lane];
      ax = fmaxf(ax, fabsf(x[k]));
      as = fmaxf(as, fabsf(s[k]));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      ax = fmaxf(ax, __shfl_xor_sync(0xffffffffu, ax, o));
      as = fmaxf(as, __shfl_xor_sync(0xffffffffu, as, o));
    }
    const float ix = ax > 0.f ? 127.f / ax : 0.f, is = as > 0.f ? 127.f / as : 0.f;
    int sum = 0;
#pragma unroll
    for (int k = 0; k < E; ++k) {
      if constexpr (Q8) q_s[h * D + 32 * k + lane] = rintf(x[k] * ix);
      const float r = rintf(s[k] * is);
      scr[h * D + 32 * k + lane] = r;  // = scr[(0 * G + h) * D + ...]: read above by this lane only
      sum += int(r);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) {
      qsc[h] = ax / 127.f * P.kdeq;
      qsc[2 * kMaxG + 2 * h] = as / 127.f * P.kqjl;
      qsc[2 * kMaxG + 2 * h + 1] = float(sum);
    }
  }
}

// B fragments of the int8 sketch of head g (row sk = scr + g·D; on = g < G), in frag::qjl_kdim order.
template <int D>
__device__ __forceinline__ void prod_q_frags(const float* sk, bool on, int t, uint32_t (&qsb)[D / 32][2]) {
  pack_i8_frags<D / 32>(sk, on, [&](int kc, int j) { return frag::qjl_kdim<D>(t, kc, j); }, qsb);
}

// The QJL term of one 16-token block's scores, added to sc (C fragment: rows r0 = g, r1 = g + 8 of
// the stage, heads 2t, 2t + 1): κ√D γ_r · qscale_h · (2 <s_h, b_r> - Σ s_h). kst: the stage's K
// section (codes rows of KCB bytes, then the (norm, gamma) pairs).
template <int D, int MB>
__device__ __forceinline__ void prod_k_score(const uint8_t* kst, int r0, int r1, int t, const uint32_t (&qsb)[D / 32][2],
                                             float qj0, float qj1, float ss0, float ss1, float (&sc)[4]) {
  constexpr int KCB = codes_bytes(D, MB, 0, 1), W = D * MB / 32;  // row bytes, mse words
  const uint32_t* w0 = reinterpret_cast<const uint32_t*>(kst + r0 * KCB) + W;
  const uint32_t* w1 = reinterpret_cast<const uint32_t*>(kst + r1 * KCB) + W;
  int acc[4] = {0, 0, 0, 0};
#pragma unroll
  for (int kc = 0; kc < D / 32; ++kc) {
    uint32_t a0, a1, a2, a3;
    frag::qjl_a(w0[kc], t, a0, a2);
    frag::qjl_a(w1[kc], t, a1, a3);
    mma_s8(acc, a0, a1, a2, a3, qsb[kc][0], qsb[kc][1]);
  }
  const __half* kn = reinterpret_cast<const __half*>(kst + kChunk * KCB);
  const float g0 = __half2float(kn[2 * r0 + 1]), g1 = __half2float(kn[2 * r1 + 1]);
  sc[0] += g0 * qj0 * (float(2 * acc[0]) - ss0);
  sc[1] += g0 * qj1 * (float(2 * acc[1]) - ss1);
  sc[2] += g1 * qj0 * (float(2 * acc[2]) - ss0);
  sc[3] += g1 * qj1 * (float(2 * acc[3]) - ss1);
}

// O2^T += Σ^T · P2^T for one block: vst = the stage's V codes, tokens A, B = 2t, 2t + 1 and C, D =
// 2t + 8, 2t + 9 of the warp's 16 (as the tqB V path), pb2: P^T weighted by n γ.
template <int D, int MB>
__device__ __forceinline__ void prod_v_pv(const uint8_t* vst, int warp, int g, int t, float (&o2)[D / 16][4],
                                          uint32_t pb0, uint32_t pb1) {
  constexpr int VCB = codes_bytes(D, MB, 0, 1), W = D * MB / 32, NX = D >= 256 ? 2 : 1;
  const uint32_t* rA = reinterpret_cast<const uint32_t*>(vst + (16 * warp + 2 * t) * VCB) + W + frag::qjl_vword(D, g);
  const uint32_t sA = rA[0], sB = rA[VCB / 4], sC = rA[8 * VCB / 4], sD = rA[9 * VCB / 4];
  uint32_t xab[NX], xcd[NX];
#pragma unroll
  for (int i = 0; i < NX; ++i) {
    const uint32_t sel = frag::qjl_xsel(D, g, i);
    xab[i] = frag::prmt(sA, sB, sel);
    xcd[i] = frag::prmt(sC, sD, sel);
  }
#pragma unroll
  for (int mt = 0; mt < D / 16; ++mt) {
    const int j0 = 2 * mt, j1 = 2 * mt + 1;
    mma(o2[mt], frag::qjl_h2(xab[j0 >> 4], frag::qjl_xbit(D, j0)), frag::qjl_h2(xab[j1 >> 4], frag::qjl_xbit(D, j1)),
        frag::qjl_h2(xcd[j0 >> 4], frag::qjl_xbit(D, j0)), frag::qjl_h2(xcd[j1 >> 4], frag::qjl_xbit(D, j1)), pb0, pb1);
  }
}

__device__ __forceinline__ uint32_t tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

// The warp's fold O += κ√D S^T O2 (the warp's running state, before the segment epilogue). O2 goes
// through the warp's slice sw[G][D] of the epilogue scratch (row h, dim d at h·D + (d + 4h) % D: the
// B-fragment reads of the 8 rows then fall in distinct banks); the A fragments come from the plan's
// vfold in fragment order, one float4 per lane and mma.
// M0 > 0: the fractional prod (decode_fprod.cuh): O2 in the order frag::qjl_vdim_frac, the matrix
// block-diagonal (parts [0, M0) and [M0, D)): each part's m-tiles take its own k-steps only.
template <int D, int M0 = 0>
__device__ __forceinline__ void prod_v_fold(const float* vfold, float* sw, int G, int g, int t, int lane,
                                            const float (&o2)[D / 16][4], float (&o)[D / 16][4]) {
  constexpr int NKC = D / 16, NKS = D / 8;
  const int h0 = 2 * t, h1 = 2 * t + 1;
#pragma unroll
  for (int mt = 0; mt < NKC; ++mt) {
    const int d0 = M0 ? frag::qjl_vdim_frac(g, mt, 0) : frag::qjl_vdim<D>(g, mt, 0);
    const int d1 = M0 ? frag::qjl_vdim_frac(g, mt, 1) : frag::qjl_vdim<D>(g, mt, 1);
    if (h0 < G) { sw[h0 * D + (d0 + 4 * h0) % D] = o2[mt][0]; sw[h0 * D + (d1 + 4 * h0) % D] = o2[mt][2]; }
    if (h1 < G) { sw[h1 * D + (d0 + 4 * h1) % D] = o2[mt][1]; sw[h1 * D + (d1 + 4 * h1) % D] = o2[mt][3]; }
  }
  __syncwarp();
  const float4* a = reinterpret_cast<const float4*>(vfold) + lane;
  const float* row = sw + (g < G ? g : 0) * D;  // rows past the group: not read (b = 0)
  if constexpr (M0 == 0) {
#pragma unroll 2
  for (int ks = 0; ks < NKS; ++ks) {
    const uint32_t b0 = g < G ? tf32(row[(frag::qjl_fold_in(ks, t, 0) + 4 * g) % D]) : 0u;
    const uint32_t b1 = g < G ? tf32(row[(frag::qjl_fold_in(ks, t, 2) + 4 * g) % D]) : 0u;
#pragma unroll
    for (int mt = 0; mt < NKC; ++mt) {
      const float4 f = __ldg(a + (mt * NKS + ks) * 32);
      mma_tf32(o[mt], __float_as_uint(f.x), __float_as_uint(f.y), __float_as_uint(f.z), __float_as_uint(f.w), b0, b1);
    }
  }
  } else {
    static_for<2>([&](auto pc) {
      constexpr int p = decltype(pc)::value;
      constexpr int KS0 = p ? M0 / 8 : 0, KS1 = p ? NKS : M0 / 8, MT0 = p ? M0 / 16 : 0, MT1 = p ? NKC : M0 / 16;
#pragma unroll 2
      for (int ks = KS0; ks < KS1; ++ks) {
        const uint32_t b0 = g < G ? tf32(row[(frag::qjl_fold_in(ks, t, 0) + 4 * g) % D]) : 0u;
        const uint32_t b1 = g < G ? tf32(row[(frag::qjl_fold_in(ks, t, 2) + 4 * g) % D]) : 0u;
#pragma unroll
        for (int mt = MT0; mt < MT1; ++mt) {
          const float4 f = __ldg(a + (mt * NKS + ks) * 32);
          mma_tf32(o[mt], __float_as_uint(f.x), __float_as_uint(f.y), __float_as_uint(f.z), __float_as_uint(f.w), b0, b1);
        }
      }
    });
  }
  __syncwarp();  // sw is the epilogue's next
}

}  // namespace tq::cuda::v3
