// src/cuda/decode_ring.cuh — how a CTA of the v3 decode kernel (decode_v3.cuh) walks its share of
// the work, and the producer warp that feeds the consumers' ring of shared-memory stages.
// Work: sum over sequences b and KV heads of ceil(len_b / 64) chunks, in (b, head, chunk) order;
// a CTA takes chunks [start, end). Per chunk the producer issues one bulk copy (cp.async.bulk,
// completing on the stage's `full` mbarrier with an expected byte count) each for the K codes, K
// norms, V codes and V norms of the chunk's head block, contiguous in the layout of layout.h.
#pragma once
#include <cstdint>

#include "cuda/decode_ptx.cuh"
#include "cuda/decode_v3_params.h"

namespace tq::cuda::v3 {

// Debug timeline (-DTQ_DECODE_TRACE builds only): slot i of this CTA = clock64 since its entry.
#ifdef TQ_DECODE_TRACE
#define TQ_TRACE(i) (P.trace ? void(P.trace[size_t(blockIdx.x) * kTraceSlots + (i)] = uint64_t(clock64() - trace_t0)) : void())
// The stamp after float v is available (the clock read would otherwise not wait for a load).
#define TQ_TRACE_AFTER(i, v) do { asm volatile("" ::"f"(v)); TQ_TRACE(i); } while (0)
#else
#define TQ_TRACE(i) ((void)0)
#define TQ_TRACE_AFTER(i, v) do { } while (0)
#endif

// The 4 consumer warps' named barrier (the producer warp runs on its own).
__device__ __forceinline__ void consumers_sync() { asm volatile("bar.sync 1, %0;" ::"n"(32 * kConsumers) : "memory"); }

// (b, head, chunk) position of the CTA's walk through the work.
struct Cursor {
  int b, hk, ch, nb;  // sequence, KV head, chunk within the segment, chunks of the segment
};
__device__ __forceinline__ Cursor locate(const int* prefix, int B, int Hkv, int c) {
  int lo = 0, hi = B - 1;  // last b with prefix[b] <= c
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (prefix[mid] <= c) lo = mid; else hi = mid - 1;
  }
  Cursor k;
  k.b = lo;
  k.nb = (prefix[lo + 1] - prefix[lo]) / Hkv;
  const int r = c - prefix[lo];
  k.hk = r / k.nb;
  k.ch = r - k.hk * k.nb;
  return k;
}
__device__ __forceinline__ void next_segment(Cursor& k, const int* prefix, int Hkv) {
  k.ch = 0;
  if (++k.hk == Hkv) {
    k.hk = 0;
    ++k.b;
    k.nb = (prefix[k.b + 1] - prefix[k.b]) / Hkv;
  }
}

// The producer warp (lane 0 issues, the warp waits on `empty` together): chunks [start, end) into
// the ring. A page id outside the pool is flagged (error bit 2) and its stage marked not ok. The
// page ids of a segment's run come 32 chunks at a time, one per lane, all in flight together (one
// by one, each chunk's copies waited for the previous page id's round trip).
template <int D, int KB, int VB, int FR, int PR>
__device__ __forceinline__ void produce(const Params& P, uint8_t* smem, uint64_t* full, uint64_t* empty, int* stage_ok,
                                        const int* prefix, const int* lens, int B, int Hkv, int PT, int start, int end,
                                        int lane, [[maybe_unused]] long long trace_t0) {
  using S = Stage<D, KB, VB, FR, PR>;
  constexpr int KCB = S::KCB, KSB = S::KSB, VCB = S::VCB, VSB = S::VSB, VOFF = S::VOFF, SB = S::SB;
  Cursor cur = locate(prefix, B, Hkv, start);
  const uint32_t kpage = P.kl.page_bytes(), vpage = P.vl.page_bytes();
  int s = 0;
  uint32_t ph = 0;
  for (int c = start; c < end;) {
    const int cnt = min(end - c, cur.nb - cur.ch);
    const int len = lens[cur.b];
    const int* row = P.page_table + size_t(cur.b) * P.max_pages;
    int mine = -1;  // page of chunk cur.ch + j0 + lane
    for (int j = 0; j < cnt; ++j) {
      if ((j & 31) == 0 && len > 0 && j + lane < cnt) mine = row[(cur.ch + j + lane) * kChunk / PT];
      const int page = __shfl_sync(0xffffffffu, mine, j & 31);
      mbar_wait(&empty[s], ph ^ 1u);
      if (lane == 0) {
        const int tok = (cur.ch + j) * kChunk;
        if (c == start && j == 0) TQ_TRACE(2);
        if (len > 0 && page >= 0 && page < P.num_pages) {
          const int off = tok % PT;
          uint8_t* st = smem + s * SB;
          const uint8_t* kp = P.k_pool + size_t(page) * kpage;
          const uint8_t* vp = P.v_pool + size_t(page) * vpage;
          stage_ok[s] = 1;
          mbar_arrive_tx(&full[s], S::TX);
          bulk_load(st, kp + P.kl.codes_offset(cur.hk, off), kChunk * KCB, &full[s]);
          if (KSB) bulk_load(st + kChunk * KCB, kp + P.kl.scalars_offset(cur.hk, off), kChunk * KSB, &full[s]);
          bulk_load(st + VOFF, vp + P.vl.codes_offset(cur.hk, off), kChunk * VCB, &full[s]);
          if (VSB) bulk_load(st + VOFF + kChunk * VCB, vp + P.vl.scalars_offset(cur.hk, off), kChunk * VSB, &full[s]);
          if (c == start && j == 0) TQ_TRACE(3);
        } else {
          if (len > 0) atomicOr(P.error_flag, 2);  // bad page id: flag it, skip the chunk
          stage_ok[s] = 0;
          mbar_arrive(&full[s]);
        }
      }
      __syncwarp();
      if (++s == P.stages) { s = 0; ph ^= 1u; }
    }
    c += cnt;
    if (c < end) next_segment(cur, prefix, Hkv);
  }
}

}  // namespace tq::cuda::v3
