// src/cuda/decode_epilogue.cuh — the end of a (sequence, KV head) segment in the v3 decode kernel
// (decode_v3.cuh), run by the 4 consumer warps: their online-softmax states merged into the CTA's
// in shared memory; if other CTAs share the segment, the CTA's state published to its global slot
// and the last CTA to finish (atomic counter, reset by it) merges all slots; that CTA (or the only
// one) applies the inverse rotation once per output row and writes it in the out dtype.
#pragma once
#include <cstdint>

#include "cuda/decode_frac.cuh"
#include "cuda/decode_frag.h"
#include "cuda/decode_ptx.cuh"
#include "cuda/decode_ring.cuh"
#include "cuda/decode_v3_params.h"
#include "cuda/hadamard.cuh"

namespace tq::cuda::v3 {

constexpr int kMergeBatch = 8;  // partial states whose loads are in flight at once per thread
constexpr int kMergeFlat = 32;  // up to this many CTAs per segment: one merge level

// Publishes the CTA's stores to `counter` (expected arrivals n) and says whether this CTA arrived
// last (then it resets the counter for the next run). The CTA barrier orders every thread's stores
// before tid 0's gpu-scope acq_rel atomic (release is cumulative), whose acquire side, followed by
// the barrier, orders the last CTA's loads after all of them (one fence by one thread, not 128).
__device__ __forceinline__ bool publish(int* counter, int n, int* flag, int tid) {
  consumers_sync();
  if (tid == 0) {
    const int prev = atom_add_acq_rel(counter, 1);
    *flag = prev == n - 1;
    if (prev == n - 1) *counter = 0;
  }
  consumers_sync();
  return *flag != 0;
}

// Online merge of the partial states in slots base + j * step + sid, j < n: per float4 item e4 of
// the G x D rows (head h), batches of kMergeBatch (max, sum) pairs and row slices whose loads are all
// issued before any is used; emit(e4, h, acc, M, L) gets the merged state (acc not yet divided by L).
template <typename Emit>
__device__ __forceinline__ void fold_slots(const Params& P, int G, int D, int sid, int base, int step, int n, int tid,
                                           Emit emit) {
  for (int e4 = tid; e4 < G * D / 4; e4 += 32 * kConsumers) {
    const int h = (4 * e4) / D;
    float M = -INFINITY, Ls = 0.f;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int i0 = 0; i0 < n; i0 += kMergeBatch) {
      float2 ml[kMergeBatch];
      float4 v[kMergeBatch];
#pragma unroll
      for (int u = 0; u < kMergeBatch; ++u) {
        const size_t sl = size_t(base + min(i0 + u, n - 1) * step + sid);
        ml[u] = __ldcg(reinterpret_cast<const float2*>(P.part_ml + (sl * G + h) * 2));
        v[u] = __ldcg(reinterpret_cast<const float4*>(P.part_o + sl * G * D) + e4);
      }
      float Mb = M;
#pragma unroll
      for (int u = 0; u < kMergeBatch; ++u)
        if (i0 + u < n) Mb = fmaxf(Mb, ml[u].x);
      if (Mb == -INFINITY) continue;  // only empty partials so far
      const float al = ex2(M - Mb);    // 0 while M is -inf
      acc.x *= al; acc.y *= al; acc.z *= al; acc.w *= al;
      Ls *= al;
#pragma unroll
      for (int u = 0; u < kMergeBatch; ++u) {
        const float f = (i0 + u >= n || ml[u].x == -INFINITY) ? 0.f : ex2(ml[u].x - Mb);
        acc.x += f * v[u].x; acc.y += f * v[u].y; acc.z += f * v[u].z; acc.w += f * v[u].w;
        Ls += f * ml[u].y;
      }
      M = Mb;
    }
    emit(e4, h, acc, M, Ls);
  }
}

// o, (m0, l0), (m1, l1): this lane's accumulators and softmax state of heads 2t, 2t+1 (log2
// domain); q_s [G][D] and scr [kConsumers][G][D] / scr_ml: shared scratch; misc: the flag of the
// merging CTA; (b, hk): the segment, sid = b * Hkv + hk, CTAs first .. first + count - 1 share it.
// VPR (fractional prod V): the split of frag::Groups<.., PROD>.
template <int D, int VB, int FR, int QV, int VPR = 0>
__device__ __forceinline__ void segment_epilogue(const Params& P, const float (&o)[D / 16][4], float m0, float m1, float l0,
                                                 float l1, float* q_s, float* scr, float* scr_ml, float* misc, int b, int hk,
                                                 int G, int sid, int first, int count, int tid, int warp, int lane, int g, int t,
                                                 [[maybe_unused]] bool trace_first, [[maybe_unused]] long long trace_t0) {
  constexpr int E = D / 32;    // row elements per lane (rotations)
  constexpr int NKC = D / 16;  // m-tiles of PV
  using GV = frag::Groups<D, VB, FR != 0, VPR != 0>;
  constexpr int VM0 = 32 * GV::kHi;  // fractional: dims of part 0
  constexpr bool kVDense1 = FR && ((D - VM0) & (D - VM0 - 1)) != 0;
  if constexpr (kVDense1) prefetch_part1<D, VM0>(P.vproj, tid, 32 * kConsumers);
#pragma unroll
  for (int off = 4; off < 32; off <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, off);
    l1 += __shfl_xor_sync(0xffffffffu, l1, off);
  }
  {
    float* sw = scr + warp * G * D;
    const int h0 = 2 * t, h1 = 2 * t + 1;
#pragma unroll
    for (int mt = 0; mt < NKC; ++mt) {
      const int d0 = QV ? 16 * mt + g : FR ? frag::vdim_frac<D, VB, VPR != 0>(g, mt, 0) : frag::vdim<D, VB>(g, mt, 0);
      const int d1 = QV ? 16 * mt + g + 8 : FR ? frag::vdim_frac<D, VB, VPR != 0>(g, mt, 1) : frag::vdim<D, VB>(g, mt, 1);
      if (h0 < G) { sw[h0 * D + d0] = o[mt][0]; sw[h0 * D + d1] = o[mt][2]; }
      if (h1 < G) { sw[h1 * D + d0] = o[mt][1]; sw[h1 * D + d1] = o[mt][3]; }
    }
    if (g == 0) {
      scr_ml[(warp * kMaxG + h0) * 2] = m0; scr_ml[(warp * kMaxG + h0) * 2 + 1] = l0;
      scr_ml[(warp * kMaxG + h1) * 2] = m1; scr_ml[(warp * kMaxG + h1) * 2 + 1] = l1;
    }
  }
  consumers_sync();
  const int slot = int(blockIdx.x) + sid;  // unique per (CTA, segment): see the plan
  if (trace_first) TQ_TRACE(0);
  // The 4 warps' states of each head, 4 rows at a time (float4), into the CTA's state.
  for (int e4 = tid; e4 < G * D / 4; e4 += 32 * kConsumers) {
    const int h = (4 * e4) / D;
    float mw[kConsumers], M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kConsumers; ++w) M = fmaxf(M, mw[w] = scr_ml[(w * kMaxG + h) * 2]);
    float4 O = make_float4(0.f, 0.f, 0.f, 0.f);
    float Ls = 0.f;
    if (M != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kConsumers; ++w) {
        const float f = ex2(mw[w] - M);
        const float4 v = reinterpret_cast<const float4*>(scr + w * G * D)[e4];
        O.x += f * v.x; O.y += f * v.y; O.z += f * v.z; O.w += f * v.w;
        Ls += f * scr_ml[(w * kMaxG + h) * 2 + 1];
      }
    }
    if (count == 1) {
      const float sc = Ls > 0.f ? P.out_scale / Ls : 0.f;
      reinterpret_cast<float4*>(q_s)[e4] = make_float4(O.x * sc, O.y * sc, O.z * sc, O.w * sc);
    } else {
      reinterpret_cast<float4*>(P.part_o + size_t(slot) * G * D)[e4] = O;
      if ((4 * e4) % D == 0) reinterpret_cast<float2*>(P.part_ml)[size_t(slot) * G + h] = make_float2(M, Ls);
    }
  }
  bool write = true;
  if (count > 1) {
    int* last_flag = reinterpret_cast<int*>(misc + 2 * kMaxG);
    if (trace_first) TQ_TRACE(7);
    if (count <= kMergeFlat) {  // one level: the last of the count CTAs merges every slot
      write = publish(&P.counters[sid], count, last_flag, tid);
      if (trace_first) TQ_TRACE(8);
      if (write) fold_slots(P, G, D, sid, first, 1, count, tid, [&](int e4, int, float4 acc, float, float Ls) {
        if (trace_first && e4 == 0) TQ_TRACE(9);
        const float sc = Ls > 0.f ? P.out_scale / Ls : 0.f;
        reinterpret_cast<float4*>(q_s)[e4] = make_float4(acc.x * sc, acc.y * sc, acc.z * sc, acc.w * sc);
      });
    } else {
      // Two levels (many CTAs per segment, small batches at long context): groups of gsz CTAs, at
      // most 8 groups. The last CTA of a group merges the group's slots into the slot of the group's
      // first CTA (already read: staged through shared memory), the last group merger merges the
      // group slots. Two atomics and two batches of loads on the critical path instead of one atomic
      // and ceil(count / 8) batches (count = 64: ~3 µs instead of ~6; docs/CUDA.md "Session 9").
      const int gsz = kMergeBatch * ((count + kMergeBatch * kMergeBatch - 1) / (kMergeBatch * kMergeBatch));
      const int ngroups = (count + gsz - 1) / gsz;
      const int grp = (int(blockIdx.x) - first) / gsz, g0 = first + grp * gsz, gn = min(gsz, count - grp * gsz);
      // Group counters after the segment counters, one per (group's first CTA + segment): unique like the slots.
      write = publish(&P.counters[P.B * P.Hkv + g0 + sid], gn, last_flag, tid);
      if (write) {
        fold_slots(P, G, D, sid, g0, 1, gn, tid, [&](int e4, int h, float4 acc, float M, float Ls) {
          reinterpret_cast<float4*>(q_s)[e4] = acc;
          if ((4 * e4) % D == 0) { scr_ml[2 * h] = M; scr_ml[2 * h + 1] = Ls; }
        });
        consumers_sync();
        const size_t gs = size_t(g0 + sid);
        for (int e4 = tid; e4 < G * D / 4; e4 += 32 * kConsumers)
          reinterpret_cast<float4*>(P.part_o + gs * G * D)[e4] = reinterpret_cast<const float4*>(q_s)[e4];
        if (tid < G) reinterpret_cast<float2*>(P.part_ml)[gs * G + tid] = make_float2(scr_ml[2 * tid], scr_ml[2 * tid + 1]);
        write = publish(&P.counters[sid], ngroups, last_flag, tid);
        if (trace_first) TQ_TRACE(8);
        if (write) fold_slots(P, G, D, sid, first, gsz, ngroups, tid, [&](int e4, int, float4 acc, float, float Ls) {
          if (trace_first && e4 == 0) TQ_TRACE(9);
          const float sc = Ls > 0.f ? P.out_scale / Ls : 0.f;
          reinterpret_cast<float4*>(q_s)[e4] = make_float4(acc.x * sc, acc.y * sc, acc.z * sc, acc.w * sc);
        });
      }
    }
  }
  if (write) {
    consumers_sync();
    if (trace_first) TQ_TRACE(10);
    if constexpr (kVDense1) {  // the dense part's inverse rotation (1/sqrt(m_1) folded in)
      dense_part1<D, VM0>(P.vproj, q_s, scr, G, warp, lane);
      consumers_sync();
    }
    for (int h = warp; h < G; h += kConsumers) {  // inverse rotation, output row in its dtype
      const size_t row = (size_t(b) * P.Hq + size_t(hk) * G + h) * D;
      if constexpr (FR != 0) {  // per part: inverse rotation, times 1/sqrt(m_p)
        {
          constexpr int n = VM0 / 32;
          float x[n];
#pragma unroll
          for (int e = 0; e < n; ++e) x[e] = q_s[h * D + lane * n + e];
          randomized_hadamard_inv<VM0>(x, P.vsign, lane);
#pragma unroll
          for (int e = 0; e < n; ++e) store_elem(P.out, P.out_dtype, row + lane * n + e, x[e] * (1.0f / sqrtf(float(VM0))));
        }
        if constexpr (!kVDense1) {
          constexpr int n = (D - VM0) / 32;
          float x[n];
#pragma unroll
          for (int e = 0; e < n; ++e) x[e] = q_s[h * D + VM0 + lane * n + e];
          randomized_hadamard_inv<D - VM0>(x, P.vsign, lane, VM0);
#pragma unroll
          for (int e = 0; e < n; ++e)
            store_elem(P.out, P.out_dtype, row + VM0 + lane * n + e, x[e] * (1.0f / sqrtf(float(D - VM0))));
        } else {
#pragma unroll
          for (int k = GV::kHi; k < E; ++k) {
            float y = 0.f;
#pragma unroll
            for (int w = 0; w < kConsumers; ++w) y += scr[(w * G + h) * D + 32 * k + lane];
            store_elem(P.out, P.out_dtype, row + 32 * k + lane, y);
          }
        }
      } else {
        float x[E];
#pragma unroll
        for (int e = 0; e < E; ++e) x[e] = q_s[h * D + lane * E + e];
        if constexpr (VB != 0) randomized_hadamard_inv<D>(x, P.vsign, lane);
#pragma unroll
        for (int e = 0; e < E; ++e) store_elem(P.out, P.out_dtype, row + lane * E + e, x[e]);
      }
    }
  }
}

}  // namespace tq::cuda::v3
