// src/cuda/decode_fprod.cuh — the fractional TurboQuant-prod pieces of the v3 decode kernel
// (decode_v3.cuh), K and V both tq(B+1).5p: two parts p (part 0 = the first m_0 channels: D/4 for
// tq2.5p, D/2 otherwise; frag::Groups<D, B, true, true>), each a TurboQuant-prod of its own: mse codes
// at B + 1 (part 0) and B bits (part 1; none for tq1.5p, B = 0: its part 1 is the QJL term alone;
// tq5.5p .. tq7.5p, B = 4..6: the mse terms on the fractional wide fp16-table paths), then the QJL
// signs of part 0 and of part 1 (D bits: sign
// word q = group q), scalars (n_0, γ_0, n_1, γ_1) per token; S_p the codec's m_p x m_p sketches,
// κ_p = qjl_kappa(m_p). Decode is x̂_p = n_p R_p^T (ĉ_p + κ_p γ_p S_p^T σ_p) (tq_codec.cpp).
//
// The mse terms are the fractional tqB.5 kernel's (per-part int8 q scales, norms, P^T sets); the
// QJL terms are decode_prod.cuh's with one weight per part:
// K: <q, x̂> += Σ_p n_p γ_p κ_p √m_p <S_p y_p, σ_p>, y_p = R_p q_p / √m_p (the rows the fractional
//    prologue leaves). The plan folds κ_p √m_p (≈ √(π/2) for every m) into the sketch blocks; the
//    sketch is rounded to int8 per row and part (scale and Σ s per part: qx), and <s_p, σ_p> =
//    2 <s_p, b_p> - Σ s_p is the int8 mma on the 0/1 sign bits, one accumulator per part (a k32-chunk
//    is a group, so it never mixes the parts).
// V: the QJL term accumulated in the sketch domain per part (P^T weighted by p n_p γ_p: P^T sets 2
//    and 3), in m-tiles that each lie in one group (frag::qjl_vdim_frac), then folded per warp by
//    the block-diagonal κ_p √m_p S_p^T (decode_prod.cuh prod_v_fold<D, M0>, the zero blocks skipped).
#pragma once
#include <cuda_fp16.h>
#include <cstdint>

#include "cuda/decode_frac.cuh"
#include "cuda/decode_frag.h"
#include "cuda/decode_ptx.cuh"
#include "cuda/decode_ring.cuh"
#include "cuda/decode_v3_params.h"

namespace tq::cuda::v3 {

// Prologue, all consumer warps, after the fractional one has rotated the q rows (q_s: both parts
// in place, scaled by 1/√m_p; a dense part 1 as the warps' partial sums in scr): the rows whole in
// q_s (fp32), the sketches S'_p y_p (dense_block per part, partial sums in scr), then per row h
// (warp h % 4) q rounded to int8 per part in place (scale · kdeq_p -> qsc[2h + p], as tqB.5) and
// its sketch to int8 per part into scr[h][D] (scale -> qx[4h + 2p], Σ of the int8 values ->
// qx[4h + 2p + 1]). Q8 = false (tq5.5p .. tq7.5p, the fractional wide mse paths): q stays fp32 in
// q_s (scored on the f16 mma), only its sketch is rounded.
template <int D, int KB, bool Q8 = true>
__device__ __forceinline__ void fprod_q_prologue(const Params& P, float* q_s, float* scr, float* qsc, float* qx, int G,
                                                 int warp, int lane) {
  using GK = frag::Groups<D, KB, true, true>;
  constexpr int E = D / 32, HI = GK::kHi, M0 = 32 * HI, M1 = D - M0;
  constexpr bool kDense1 = (M1 & (M1 - 1)) != 0;
  if constexpr (kDense1) {
    for (int h = warp; h < G; h += kConsumers)
#pragma unroll
      for (int k = HI; k < E; ++k) {
        float y = 0.f;
#pragma unroll
        for (int w = 0; w < kConsumers; ++w) y += scr[(w * G + h) * D + 32 * k + lane];
        q_s[h * D + 32 * k + lane] = y;
      }
    consumers_sync();  // scr is the sketches' next
  }
  dense_block<D, 0, M0>(P.ksk, q_s, scr, G, warp, lane);
  dense_block<D, M0, M1>(P.ksk + M0 * M0, q_s, scr, G, warp, lane);
  consumers_sync();
  for (int h = warp; h < G; h += kConsumers) {
    float x[E], s[E];
    float ax[2] = {0.f, 0.f}, as[2] = {0.f, 0.f};
#pragma unroll
    for (int k = 0; k < E; ++k) {
      x[k] = q_s[h * D + 32 * k + lane];
      s[k] = 0.f;
#pragma unroll
      for (int w = 0; w < kConsumers; ++w) s[k] += scr[(w * G + h) * D + 32 * k + lane];
      ax[k < HI ? 0 : 1] = fmaxf(ax[k < HI ? 0 : 1], fabsf(x[k]));
      as[k < HI ? 0 : 1] = fmaxf(as[k < HI ? 0 : 1], fabsf(s[k]));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        ax[p] = fmaxf(ax[p], __shfl_xor_sync(0xffffffffu, ax[p], o));
        as[p] = fmaxf(as[p], __shfl_xor_sync(0xffffffffu, as[p], o));
      }
    float ix[2], is[2];
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      ix[p] = ax[p] > 0.f ? 127.f / ax[p] : 0.f;
      is[p] = as[p] > 0.f ? 127.f / as[p] : 0.f;
    }
    int sum[2] = {0, 0};
#pragma unroll
    for (int k = 0; k < E; ++k) {
      const int p = k < HI ? 0 : 1;
      if constexpr (Q8) q_s[h * D + 32 * k + lane] = rintf(x[k] * ix[p]);
      const float r = rintf(s[k] * is[p]);
      scr[h * D + 32 * k + lane] = r;  // = scr[(0 * G + h) * D + ...]: read above by this lane only
      sum[p] += int(r);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      sum[0] += __shfl_xor_sync(0xffffffffu, sum[0], o);
      sum[1] += __shfl_xor_sync(0xffffffffu, sum[1], o);
    }
    if (lane == 0) {
      if constexpr (Q8) {
        qsc[2 * h] = ax[0] / 127.f * P.kdeq;
        qsc[2 * h + 1] = ax[1] / 127.f * P.kdeqb;
      }
      qx[4 * h] = as[0] / 127.f;
      qx[4 * h + 1] = float(sum[0]);
      qx[4 * h + 2] = as[1] / 127.f;
      qx[4 * h + 3] = float(sum[1]);
    }
  }
}

// The QJL terms of one 16-token block's scores, added to sc (C fragment: rows r0 = g, r1 = g + 8
// of the stage, heads 2t, 2t + 1): per part p, n_p γ_p · scale_hp · (2 <s_hp, b_p> - Σ s_hp) with
// qj[h][p] = scale, ss[h][p] = Σ (h: head 2t + h). kst: the stage's K section (codes rows of KCB
// bytes, then the (n_0, γ_0, n_1, γ_1) rows).
template <int D, int KB>
__device__ __forceinline__ void fprod_k_score(const uint8_t* kst, int r0, int r1, int t, const uint32_t (&qsb)[D / 32][2],
                                              const float (&qj)[2][2], const float (&ss)[2][2], float (&sc)[4]) {
  using GK = frag::Groups<D, KB, true, true>;
  constexpr int KCB = codes_bytes(D, KB, 1, 1), W = GK::kCodesBytes / 4, HI = GK::kHi;
  const uint32_t* w0 = reinterpret_cast<const uint32_t*>(kst + r0 * KCB) + W;
  const uint32_t* w1 = reinterpret_cast<const uint32_t*>(kst + r1 * KCB) + W;
  int acc[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
#pragma unroll
  for (int kc = 0; kc < D / 32; ++kc) {
    uint32_t a0, a1, a2, a3;
    frag::qjl_a(w0[kc], t, a0, a2);
    frag::qjl_a(w1[kc], t, a1, a3);
    mma_s8(acc[kc < HI ? 0 : 1], a0, a1, a2, a3, qsb[kc][0], qsb[kc][1]);
  }
  const __half2* kn = reinterpret_cast<const __half2*>(kst + kChunk * KCB);  // (n_p, γ_p) of row r at 2r + p
#pragma unroll
  for (int p = 0; p < 2; ++p) {
    const float2 a = __half22float2(kn[2 * r0 + p]), b = __half22float2(kn[2 * r1 + p]);
    const float wa = a.x * a.y, wb = b.x * b.y;
    sc[0] += wa * qj[0][p] * (float(2 * acc[p][0]) - ss[0][p]);
    sc[1] += wa * qj[1][p] * (float(2 * acc[p][1]) - ss[1][p]);
    sc[2] += wb * qj[0][p] * (float(2 * acc[p][2]) - ss[0][p]);
    sc[3] += wb * qj[1][p] * (float(2 * acc[p][3]) - ss[1][p]);
  }
}

// O2^T += Σ^T · P2_p^T for one block: vst = the stage's V codes, tokens A, B = 2t, 2t + 1 and C, D =
// 2t + 8, 2t + 9 of the warp's 16 (as the tqB.5 V path); m-tiles 2q, 2q + 1 = group q (part p),
// P^T weighted by p n_p γ_p = pbk[2 + p] (frag::qjl_vdim_frac).
template <int D, int VB>
__device__ __forceinline__ void fprod_v_pv(const uint8_t* vst, int warp, int g, int t, float (&o2)[D / 16][4],
                                           const uint32_t (&pbk)[4][2]) {
  using GV = frag::Groups<D, VB, true, true>;
  constexpr int VCB = codes_bytes(D, VB, 1, 1), W = GV::kCodesBytes / 4, HI = GV::kHi;
  const uint32_t* rA = reinterpret_cast<const uint32_t*>(vst + (16 * warp + 2 * t) * VCB) + W;
  const uint32_t* rB = rA + VCB / 4;
  const uint32_t* rC = rA + 8 * VCB / 4;
  const uint32_t* rD = rC + VCB / 4;
  const uint32_t sel = frag::qjl_fxsel(g);
  const int sh = frag::qjl_fxshift(g);
#pragma unroll
  for (int q = 0; q < D / 32; ++q) {
    const uint32_t xab = frag::prmt(rA[q], rB[q], sel) >> sh, xcd = frag::prmt(rC[q], rD[q], sel) >> sh;
    const int p = q < HI ? 2 : 3;
#pragma unroll
    for (int hf = 0; hf < 2; ++hf)
      mma(o2[2 * q + hf], frag::qjl_h2(xab, 2 * hf), frag::qjl_h2(xab, 2 * hf + 1), frag::qjl_h2(xcd, 2 * hf),
          frag::qjl_h2(xcd, 2 * hf + 1), pbk[p][0], pbk[p][1]);
  }
}

}  // namespace tq::cuda::v3
