// src/cuda/decode_prologue.cuh — the start of a segment in the v3 decode kernel (decode_v3.cuh), run
// by the 4 consumer warps: the GQA group's q rows loaded, rotated into the keys' domain
// (TurboQuant K: the randomized Hadamard, per part for fractional codecs, a dense rotation for a
// part that is not a power of two), scaled by the softmax scale and, for int8 scores, rounded per
// row; left in shared memory, where each lane then picks up its B fragments.
#pragma once
#include <cstdint>

#include "cuda/decode_frac.cuh"
#include "cuda/decode_fprod.cuh"
#include "cuda/decode_frag.h"
#include "cuda/decode_prod.cuh"
#include "cuda/decode_ptx.cuh"
#include "cuda/decode_ring.cuh"
#include "cuda/decode_v3_params.h"
#include "cuda/hadamard.cuh"

namespace tq::cuda::v3 {

// Where the q rows go. Single-part int8 K (kInt8): as int8 in fragment order (frag::kpos8), rows
// kInt8Row bytes apart, so each lane loads its B fragments with D/64 16-byte loads. As floats in
// coordinate order, the 8 rows x 4 lanes of each fragment load hit one bank (32-way conflicts:
// ~0.7 us of the prologue at B = 1, T = 1K). The padding keeps two rows' runs off each other's
// banks. Every other codec: floats [G][D] in coordinate order.
template <int D, int KB, int FR, int PR>
struct QRows {
  static constexpr bool kWide = KB >= 5 && !FR;
  static constexpr bool kInt8 = KB != 0 && !FR && !(PR & 1) && !kWide;
  static constexpr int kInt8Row = D + 16;
  static_assert(kMaxG * kInt8Row <= kMaxG * D * 4, "int8 q rows fit the q_s rows");
};

// q rows of sequence b, KV head hk (G of them) into q_s (and qsc: per-row int8 scales; scr:
// fractional dense-part sums, prod sketches; qx: fractional prod sketch scales), then a consumers'
// barrier.
template <int D, int KB, int FR, int PR>
__device__ __forceinline__ void stage_q_rows(const Params& P, int b, int hk, int G, float* q_s, float* scr, float* qsc,
                                             [[maybe_unused]] float* qx, int tid, int warp, int lane,
                                             [[maybe_unused]] bool trace_first,
                                             [[maybe_unused]] long long trace_t0) {
  constexpr int E = D / 32;  // row elements per lane (rotations)
  constexpr int KPR = PR & 1, VPR = PR & 2;
  using GK = frag::Groups<D, KB, FR != 0, KPR != 0>;
  constexpr int KM0 = 32 * GK::kHi;  // fractional: dims of part 0
  constexpr bool kKDense1 = FR && ((D - KM0) & (D - KM0 - 1)) != 0;
  constexpr bool WIDE = QRows<D, KB, FR, PR>::kWide, FW = FR && KB >= 4;
  constexpr bool kQ8 = QRows<D, KB, FR, PR>::kInt8;
  constexpr int kQ8Row = QRows<D, KB, FR, PR>::kInt8Row;
  [[maybe_unused]] int8_t* q8 = reinterpret_cast<int8_t*>(q_s);
  if constexpr (FR != 0) {
    // Fractional: each part rotated (Hadamard in place in q_s, or the dense part 1 into partial
    // sums in scr) and scaled by 1/sqrt(m_p), then rounded to int8 with its own scale (part scores
    // carry their own norms).
    const size_t row0 = (size_t(b) * P.Hq + size_t(hk) * G) * D;
    for (int e = tid; e < G * D; e += 32 * kConsumers) q_s[e] = load_elem(P.q, P.q_dtype, row0 + e) * P.q_scale;
    consumers_sync();
    for (int h = warp; h < G; h += kConsumers) {  // Hadamard parts (row h: this warp only)
      float* row = q_s + h * D;
      {
        constexpr int n = KM0 / 32;
        float x[n];
#pragma unroll
        for (int e = 0; e < n; ++e) x[e] = row[lane * n + e];
        randomized_hadamard<KM0>(x, P.ksign, lane);
#pragma unroll
        for (int e = 0; e < n; ++e) row[lane * n + e] = x[e] * (1.0f / sqrtf(float(KM0)));
      }
      if constexpr (!kKDense1) {
        constexpr int n = (D - KM0) / 32;
        float x[n];
#pragma unroll
        for (int e = 0; e < n; ++e) x[e] = row[KM0 + lane * n + e];
        randomized_hadamard<D - KM0>(x, P.ksign, lane, KM0);
#pragma unroll
        for (int e = 0; e < n; ++e) row[KM0 + lane * n + e] = x[e] * (1.0f / sqrtf(float(D - KM0)));
      }
    }
    if constexpr (kKDense1) dense_part1<D, KM0>(P.kproj, q_s, scr, G, warp, lane);  // reads part 1 only
    consumers_sync();
    if constexpr (KPR != 0)  // fractional prod: q and its per-part sketches to int8 (decode_fprod.cuh)
      fprod_q_prologue<D, KB, !FW>(P, q_s, scr, qsc, qx, G, warp, lane);
    else if constexpr (!FW)  // fractional wide: q stays fp16 (scored on the f16 mma), no int8 rounding
    for (int h = warp; h < G; h += kConsumers) {
      float x[E];
#pragma unroll
      for (int k = 0; k < E; ++k) {
        if (!kKDense1 || k < GK::kHi) {
          x[k] = q_s[h * D + 32 * k + lane];
        } else {
          x[k] = 0.f;
#pragma unroll
          for (int w = 0; w < kConsumers; ++w) x[k] += scr[(w * G + h) * D + 32 * k + lane];
        }
      }
      float a0 = 0.f, a1 = 0.f;
#pragma unroll
      for (int k = 0; k < E; ++k) {
        if (k < GK::kHi) a0 = fmaxf(a0, fabsf(x[k]));
        else a1 = fmaxf(a1, fabsf(x[k]));
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        a0 = fmaxf(a0, __shfl_xor_sync(0xffffffffu, a0, o));
        a1 = fmaxf(a1, __shfl_xor_sync(0xffffffffu, a1, o));
      }
      const float i0 = a0 > 0.f ? 127.f / a0 : 0.f, i1 = a1 > 0.f ? 127.f / a1 : 0.f;
#pragma unroll
      for (int k = 0; k < E; ++k) q_s[h * D + 32 * k + lane] = rintf(x[k] * (k < GK::kHi ? i0 : i1));
      if (lane == 0) {
        qsc[2 * h] = a0 / 127.f * P.kdeq;
        qsc[2 * h + 1] = a1 / 127.f * P.kdeqb;
      }
    }
  } else {
    if constexpr (kQ8)  // int8 q rows G..7: zero B columns (loaded unmasked below)
      for (int i = G * kQ8Row / 16 + tid; i < kMaxG * kQ8Row / 16; i += 32 * kConsumers)
        reinterpret_cast<uint4*>(q8)[i] = make_uint4(0u, 0u, 0u, 0u);
    for (int h = warp; h < G; h += kConsumers) {
      const size_t row = (size_t(b) * P.Hq + size_t(hk) * G + h) * D;
      float x[E];
#pragma unroll
      for (int e = 0; e < E; ++e) x[e] = load_elem(P.q, P.q_dtype, row + lane * E + e);
      if (trace_first && h == 0) TQ_TRACE_AFTER(16, x[E - 1]);  // q row loaded
      if constexpr (KB != 0) randomized_hadamard<D>(x, P.ksign, lane);
      if (trace_first && h == 0) TQ_TRACE_AFTER(17, x[E - 1]);  // q row rotated
      float amax = 0.f;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        x[e] *= P.q_scale;
        amax = fmaxf(amax, fabsf(x[e]));
      }
      if constexpr (KB != 0 && !KPR && !WIDE) {  // int8 q: x * 127 / max|x| per row, the scale goes to the scores
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        const float inv = amax > 0.f ? 127.f / amax : 0.f;
#pragma unroll
        for (int e = 0; e < E; ++e) x[e] = rintf(x[e] * inv);
        if (lane == 0) qsc[h] = amax / 127.f * P.kdeq;
      }
      if constexpr (kQ8) {
#pragma unroll
        for (int e = 0; e < E; ++e) q8[h * kQ8Row + frag::kpos8<KB>(lane * E + e)] = int8_t(int(x[e]));
      } else {
#pragma unroll
        for (int e = 0; e < E; ++e) q_s[h * D + lane * E + e] = x[e];
      }
    }
  }
  if constexpr (KPR != 0 && FR == 0) prod_q_prologue<D, !WIDE>(P, q_s, scr, qsc, G, warp, lane, [] { consumers_sync(); });
  if constexpr (VPR != 0 && D <= 128) prefetch_part1<D, 0>(P.vfold, tid, 32 * kConsumers);  // the fold's S^T (64 KB at most)
  consumers_sync();
  if (trace_first) TQ_TRACE(18);  // every warp's q rows in shared memory
}

}  // namespace tq::cuda::v3
