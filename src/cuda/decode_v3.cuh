// src/cuda/decode_v3.cuh — v3 paged decode attention over TurboQuant / fp16 KV (sm_90), one launch.
//
// Grid: one persistent wave (occupancy x SMs) of 160-thread CTAs: 4 consumer warps + 1 producer
// warp. The work, sum over sequences b and KV heads of ceil(len_b / 64) chunks of 64 tokens, is cut
// into equal contiguous ranges, one per CTA, in (b, head, chunk) order: every CTA moves the same
// bytes whatever the lengths. A (b, head) "segment" spread over several CTAs leaves one partial
// state per CTA; the CTA that finishes a segment last (atomic counter) merges them.
//
// Producer warp: per chunk, one bulk copy (cp.async.bulk, completes on an mbarrier) each for the K
// codes, K norms, V codes, V norms of the chunk's head block — contiguous in the layout of layout.h
// — into a ring of `stages` shared-memory stages. No registers, no address math per token.
// (decode_ring.cuh: the walk through the work and the producer.)
// Consumer warp w: tokens [16w, 16w+16) of each chunk (TurboQuant K: of two chunks per iteration,
// one softmax update for both), GQA group (G <= 8 heads) as the N = 8 side:
//   S^T[16 tok x 8 head] = K · Q^T   (TurboQuant K: int8 centroids by one prmt per 4 codes, q
//                                     rounded to int8 per row, mma.m16n8k32.s8; fp16 K: f16 mma;
//                                     tq5..tq8: fp16 centroids from a shared-memory table, f16 mma)
//   online softmax in exp2 (log2(e) and the scale folded into q), P^T by movmatrix.trans
//   O^T[D x 8 head] += V^T · P^T   (V codes of two tokens merged so one lookup gives half2(tok, tok))
// Wide codecs tq5..tq8 (KB = VB >= 5): 32..256 centroids do not fit a prmt table; both codebooks
// sit in shared memory as fp16 (frag::wide_run: one 16-bit load per code, runs of consecutive
// coordinates per lane), q stays fp16 (rotated, scaled) and both products run on the f16 mma.
// Norms: K norm multiplies the scores, V norm multiplies p (before fp16 rounding). Tables hold
// c * sqrt(D) (no fp16 subnormals); 1/sqrt(D) is folded into q and into the output scale.
// Per segment: q rows rotated in the prologue (decode_prologue.cuh: randomized Hadamard, warp
// shuffles), the 4 warps' states merged in shared memory, and the final row inverse-rotated and
// written in the out dtype (decode_epilogue.cuh).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "cuda/decode_frac.cuh"
#include "cuda/decode_epilogue.cuh"
#include "cuda/decode_fprod.cuh"
#include "cuda/decode_frag.h"
#include "cuda/decode_prod.cuh"
#include "cuda/decode_prologue.cuh"
#if defined(TQ_DECODE_PROBE)
#include "cuda/decode_probe.cuh"
#endif
#include "cuda/decode_ptx.cuh"
#include "cuda/decode_quad.cuh"
#include "cuda/decode_ring.cuh"
#include "cuda/decode_v3_params.h"
#include "cuda/hadamard.cuh"
#include "turboquant/layout.h"

namespace tq::cuda::v3 {

// Stage-dropping variants (-DTQ_DECODE_DROP builds only, plan env TQ_CUDA_DECODE_DROP=bits): where
// the time of a step goes. Bit 0: K selector words go to the int8 mma without their lookup; bit 1:
// V selector words go to the f16 mma without their lookup (nibbles 0-7: finite fp16); bit 2: no
// softmax (p = score, no max, no exp2); bit 3: no PV (P^T folded into one accumulator); bit 4: no
// scoring (scores made up from the token index, K never read); bit 5: no compute at all (the ring's
// loads and barriers only). Bits 3-5 cover the quad-V kernels too, bits 1-2 only the row kernels.
// Bits 0-2 keep loads and mma; the results are wrong by design.
#ifdef TQ_DECODE_DROP
#define TQ_DROP(bit) ((P.drop >> (bit)) & 1)
#else
#define TQ_DROP(bit) 0
#endif

static_assert(kRounds == kHadamardRounds, "sign masks per Hadamard round");

// CTAs per SM the register budget is capped for: 4 (<= 102 registers) where the kernel fits without
// spills, fewer for the wider 4-bit decode and head_dim 256 (prod at 256: 2 x 64 fp32 accumulators).
// (FR: fractional codecs, a 4-bit part 0 for tq3.5; PR: prod, the QJL fragments and accumulators.)
// tq1.5 (FR, KB = 1) at D = 64 / 128 and tq5p (PR, KB = 4) at D = 128: one CTA fewer than their
// neighbours, the budget at which ptxas reports no spills (tq1.5: 68 B of spills at 4 CTAs, D = 128;
// tq5p: 80 B at 3); their speed is not measured yet.
constexpr int min_ctas(int d, int kb, int vb, int fr, int pr = 0, int qv = 0) {
#ifdef TQ_QV_MIN_CTAS  // experiment builds: the quad-V kernels at another register budget
  if (qv && d != 256) return TQ_QV_MIN_CTAS;
#endif
  if (fr && pr && kb >= 4) return d == 256 ? 1 : d == 128 ? 2 : 3;  // fractional prod wide (tq5.5p .. tq7.5p)
  if (fr && kb >= 4) return d == 256 ? 2 : d == 128 ? 3 : 4;  // fractional wide (tq4.5 .. tq7.5)
  if (pr && kb >= 5) return d == 256 ? 1 : d == 128 ? 2 : 3;  // prod wide (tq6p .. tq8p): spills at one CTA more
  if (kb >= 5) return d == 256 ? 2 : d == 128 ? 3 : 4;  // wide: no spills at these (-Xptxas -v)
  if (pr && kb == 4 && d == 128) return 2;  // tq5p
  if (fr && pr) return d == 256 ? 1 : d == 128 ? 2 : 3;  // tq1.5p .. tq4.5p: two parts' QJL scales (spills at 3 CTAs, D = 128)
  return d == 256 ? (pr ? 1 : 2) : (kb == 4 || vb == 4 || kb == 0 || (fr && (kb == 3 || kb == 1)) || pr) ? 3 : 4;
}

// The wide codecs' fp16 tables (K's then V's): static shared memory of the wide kernels only.
template <int N>
__device__ __forceinline__ uint16_t* wide_tables() {
  __shared__ __align__(16) uint16_t tab[N];
  return tab;
}

// FR = 1: K and V both fractional tqB.5 (B = KB = VB), two parts of frag::Groups<D, B, true>.
// PR: bit 0 = K, bit 1 = V is tq(B+1)p (KB / VB = the mse bits; decode_prod.cuh).
// FR = 1 and PR = 3: K and V both tq(B+1).5p, KB = VB = B = part 1's mse bits (0..3: the int8
// paths of tqB.5, B = 0 (tq1.5p): part 1 has no mse codes, only its QJL signs; 4..6: the fractional
// wide paths), the QJL terms per part (decode_fprod.cuh).
// QV = 1: V pages in token quads (layout.h quad_pos) and PV on int8 tensor cores, P^T as u8 per block
// pair (DecodeShape::v_quads).
template <int D, int KB, int VB, int FR, int PR = 0, int QV = 0>
__global__ void __launch_bounds__(kThreads, min_ctas(D, KB, VB, FR, PR, QV)) decode_kernel(const __grid_constant__ Params P) {
  constexpr int E = D / 32;       // row elements per lane (rotations)
  constexpr int NKC = D / 16;     // k-chunks of QK^T = m-tiles of PV
  constexpr int KPR = PR & 1, VPR = PR & 2;
  // fp16 pass-through K / V (bits 0; tq1.5p's bits 0 is its part 1's mse bits).
  constexpr bool F16K = KB == 0 && !FR, F16V = VB == 0 && !FR;
  using S = Stage<D, KB, VB, FR, PR>;  // the ring stage's sections (decode_v3_params.h)
  constexpr int KCB = S::KCB, KSB = S::KSB, VCB = S::VCB, VSB = S::VSB, VOFF = S::VOFF, SB = S::SB;
  // P^T sets: one per V part norm (fractional: 2), prod: + the QJL weight n γ per part.
  constexpr int NP = FR && VPR ? 4 : FR || VPR ? 2 : 1;
  using GK = frag::Groups<D, KB, FR != 0, KPR != 0>;
  using GV = frag::Groups<D, VB, FR != 0, VPR != 0>;
  constexpr int KM0 = 32 * GK::kHi, VM0 = 32 * GV::kHi;  // fractional: dims of part 0
  // Fractional: a part 1 that is not a power of two (tq2.5: 96 / 192 dims) has a dense rotation.
  constexpr bool kKDense1 = FR && ((D - KM0) & (D - KM0 - 1)) != 0;
  static_assert(!FR || ((PR || (KB != 0 && VB != 0)) && GK::kCodesBytes + (KPR ? D / 8 : 0) == KCB &&
                        GV::kCodesBytes + (VPR ? D / 8 : 0) == VCB && GK::kHi > 0));
  static_assert(!PR || (FR ? PR == 3 && KB == VB && KB <= 6 : KB != 0 && VB != 0),
                "prod: TurboQuant K and V; fractional: both tq(B+1).5p, B = 0..6");
  static_assert(!QV || (KB == VB && KB >= 2 && KB <= 4 && !FR && !PR), "quad V: tqB/tqB, B = 2..4");
  constexpr bool WIDE = KB >= 5 && !FR;  // tq5..tq8 K and V (shared-memory fp16 tables, f16 mma)
  static_assert(!WIDE || (KB == VB && (!PR || KB <= 7) && !QV), "wide: tqB/tqB, B = 5..8, or tq(B+1)p/tq(B+1)p, B = 5..7");
  // Fractional wide tq4.5 .. tq7.5 (FR, KB = VB = B >= 4): both parts through fp16 tables in shared
  // memory (frag::kdim_fwide, frag::frac_wide_run), q fp16, both products on the f16 mma.
  constexpr bool FW = FR && KB >= 4;
  static_assert(!FW || (KB == VB && (!PR || (PR == 3 && KB <= 6)) && !QV),
                "fractional wide: tqB.5/tqB.5, B = 4..7, or tq(B+1).5p/tq(B+1).5p, B = 4..6");
  // Shared-memory fp16 tables: wide: K's 2^KB entries, V's; fractional wide: K part 0 (2^(KB+1)),
  // K part 1 (2^KB), V part 0, V part 1.
  constexpr int NWT = WIDE ? 2 << KB : FW ? 6 << KB : 0;

#ifdef TQ_DECODE_TRACE
  const long long trace_t0 = clock64();
  if (P.trace && threadIdx.x == 0) {
    uint64_t gt;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(gt));
    P.trace[size_t(blockIdx.x) * kTraceSlots + 15] = gt;
  }
#else
  [[maybe_unused]] constexpr long long trace_t0 = 0;
#endif
  extern __shared__ __align__(128) uint8_t smem[];
  const Smem L = smem_layout(D, SB, P.stages, P.B, P.G, FR && PR ? kQxFloats : 0);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + L.bars);
  uint64_t* empty = full + kMaxStages;
  int* stage_ok = reinterpret_cast<int*>(smem + L.ok);
  float* misc = reinterpret_cast<float*>(smem + L.misc);  // [2*kMaxG]: the merging-CTA flag
  float* qsc = reinterpret_cast<float*>(smem + L.qsc);    // [kMaxG] int8 q row scale * kdeq
  int* prefix = reinterpret_cast<int*>(smem + L.prefix);  // [B + 1] first work chunk of sequence b
  int* lens = reinterpret_cast<int*>(smem + L.lens);      // [B] validated lengths
  float* q_s = reinterpret_cast<float*>(smem + L.q);      // [kMaxG][D] q rows, later the final rows
  constexpr bool kQ8 = QRows<D, KB, FR, PR>::kInt8;  // int8 q rows in fragment order (decode_prologue.cuh)
  constexpr int kQ8Row = QRows<D, KB, FR, PR>::kInt8Row;
  [[maybe_unused]] const int8_t* q8 = reinterpret_cast<const int8_t*>(q_s);
  float* scr = reinterpret_cast<float*>(smem + L.scr);    // [kConsumers][G][D] warp states
  float* scr_ml = reinterpret_cast<float*>(smem + L.scr_ml);
  [[maybe_unused]] float* qx = reinterpret_cast<float*>(smem + L.qx);  // fractional prod (decode_fprod.cuh)

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;
  const int B = P.B, Hkv = P.Hkv, G = P.G, PT = int(P.kl.page_tokens);
  // ---- setup: validated lengths and the work prefix (warp 0, first: every CTA's schedule and the
  // producer's first page id wait on it), barriers (warp 1), L2 prefetches (producer warp) ----
  if (warp == 0) {
    if (lane == 0) TQ_TRACE(12);
    const int per = (B + 31) / 32, b0 = min(B, lane * per), b1 = min(B, b0 + per);
    int sum = 0;
    for (int b = b0; b < b1; ++b) {
      int len = P.seq_lens[b];
      if (len < 0 || len > P.max_seq_len) {  // out of range: flag it, attend to nothing
        if (blockIdx.x == 0) atomicOr(P.error_flag, 1);
        len = 0;
      }
      lens[b] = len;
      sum += max(1, (len + kChunk - 1) / kChunk) * Hkv;
    }
    if (lane == 0) TQ_TRACE(13);
    int incl = sum;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += y;
    }
    int run = incl - sum;
    for (int b = b0; b < b1; ++b) {
      prefix[b] = run;
      run += max(1, (lens[b] + kChunk - 1) / kChunk) * Hkv;
    }
    if (lane == 31) prefix[B] = incl;
  }
  // Lookup tables (prmt operands). The empty asm makes them opaque values: without it the compiler
  // copied the V table from uniform registers before every lookup (~30 MOVs per block); with it the
  // loop reloads them at most once per block (LDC) under register pressure.
  uint32_t ktab8[4], vtab[8];
#pragma unroll
  for (int i = 0; i < 4; ++i) { ktab8[i] = P.ktab8[i]; asm volatile("" : "+r"(ktab8[i])); }
#pragma unroll
  for (int i = 0; i < 8; ++i) { vtab[i] = P.vtab[i]; asm volatile("" : "+r"(vtab[i])); }
  // Quad V: the int8 V centroids live in shared memory and are read right before each block pair's
  // lookups. Held in registers from the prologue, the compiler kept one in a uniform register and
  // copied it into a vector register before every prmt (a dozen MOVs per block pair, SASS of 0da4594).
  __shared__ uint32_t vtab8_s[4];
  if constexpr (QV != 0)
    if (tid < 4) vtab8_s[tid] = P.vtab8[tid];
  // Wide: K's table (2^KB fp16 c * sqrt(D)) then V's, in shared memory (the __syncthreads below
  // publishes them).
  [[maybe_unused]] uint16_t* wtab = nullptr;
  if constexpr (NWT != 0) {
    wtab = wide_tables<NWT>();
    for (int i = tid; i < NWT; i += kThreads) wtab[i] = P.wtab[i];
  }
  uint32_t ktab8b[4] = {0, 0, 0, 0}, vtabb[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // part 1 (fractional)
  if constexpr (FR != 0 && !FW && KB != 0) {  // (tq1.5p: part 1 has no mse codes)
#pragma unroll
    for (int i = 0; i < 4; ++i) { ktab8b[i] = P.ktab8b[i]; asm volatile("" : "+r"(ktab8b[i])); }
#pragma unroll
    for (int i = 0; i < 8; ++i) { vtabb[i] = P.vtabb[i]; asm volatile("" : "+r"(vtabb[i])); }
  }

#if defined(TQ_DECODE_PROBE) && TQ_PROBE_KIND == 4
  __shared__ uint32_t vpair[64 * 32];  // probe kind 4's table (decode_probe.cuh)
  if constexpr (VB == 3 && !FR && !PR) probe::fill_pair_table(vpair, P.vtab, tid, kThreads);
#endif
  // Small batches wait on a chain of dependent global loads (lengths -> page table -> copies, and the
  // q rows after the prefix). The q rows and the page table are cold: every CTA prefetches its
  // 1/gridDim share of them into L2 now, so the dependent loads later hit L2.
  if (warp == kConsumers) {
    const size_t qbytes = size_t(B) * P.Hq * D * (P.q_dtype == 0 ? 4 : 2);
    const size_t tbytes = size_t(B) * P.max_pages * 4;
    const size_t lines = (qbytes + 127) / 128, tlines = (tbytes + 127) / 128;
    for (size_t i = blockIdx.x * 32 + lane; i < lines + tlines; i += size_t(gridDim.x) * 32) {
      const char* a = i < lines ? static_cast<const char*>(P.q) + 128 * i
                                : reinterpret_cast<const char*>(P.page_table) + 128 * (i - lines);
      asm volatile("prefetch.global.L2 [%0];" ::"l"(a));
    }
  }
  if constexpr (kKDense1)
    if (warp < kConsumers) prefetch_part1<D, KM0>(P.kproj, tid, 32 * kConsumers);
  if constexpr (KPR != 0 && D <= 128) if (warp < kConsumers) prefetch_part1<D, 0>(P.ksk, tid, 32 * kConsumers);
  if (tid == 32) {
    for (int s = 0; s < P.stages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], 32 * kConsumers);  // every consumer lane arrives
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  if (tid == 32 * kConsumers) TQ_TRACE(14);
  __syncthreads();
  if (tid == 0) TQ_TRACE(1);
  const int total = prefix[B];
  // Chunks per CTA: spread over the whole wave, but no fewer than the plan's floor (small problems:
  // fewer partials to merge beats more parallel CTAs; see DecodePlan's split policy).
  const int W = max(P.min_chunks, (total + int(gridDim.x) - 1) / int(gridDim.x));
  const int start = int(blockIdx.x) * W, end = min(total, start + W);
  if (start >= end) return;

  if (warp == kConsumers) {  // the producer warp
    produce<D, KB, VB, FR, PR>(P, smem, full, empty, stage_ok, prefix, lens, B, Hkv, PT, start, end, lane, trace_t0);
    return;
  }

  // ===================== consumer warps =====================
  Cursor cur = locate(prefix, B, Hkv, start);
  int s = 0;
  uint32_t ph = 0;
  for (int c = start; c < end;) {
    const bool trace_first = c == start && tid == 0;  // trace the CTA's first segment
    const int cnt = min(end - c, cur.nb - cur.ch);
    const int len = lens[cur.b];
    const int sid = cur.b * Hkv + cur.hk;
    const int seg_start = prefix[cur.b] + cur.hk * cur.nb;
    const int first = seg_start / W, last = (seg_start + cur.nb - 1) / W;
    const int count = last - first + 1;  // CTAs sharing this segment

    // ---- q rows of the group (decode_prologue.cuh), then this lane's B fragments ----
    stage_q_rows<D, KB, FR, PR>(P, cur.b, cur.hk, G, q_s, scr, qsc, qx, tid, warp, lane, trace_first, trace_t0);
    // B fragments: fp16 and wide K -> f16 pairs per k16-chunk (in kdim order); TurboQuant K -> 4
    // int8 per register per k32-chunk (rows g >= G are zero: their columns of S are ignored).
    constexpr int NQB = F16K || WIDE || FW ? NKC : D / 32;
    uint32_t qb[NQB][2];
    float qf0 = 1.f, qf1 = 1.f;  // score scale of heads 2t, 2t+1 (int8 K; fractional: part 0)
    float qg0 = 1.f, qg1 = 1.f;  // fractional: part 1
    uint32_t qsb[KPR ? D / 32 : 1][2];  // prod: q's sketch (int8), scale and sum of heads 2t, 2t+1
    float qj0 = 0.f, qj1 = 0.f, ss0 = 0.f, ss1 = 0.f;
    [[maybe_unused]] float fqj[2][2] = {{0.f, 0.f}, {0.f, 0.f}}, fss[2][2] = {{0.f, 0.f}, {0.f, 0.f}};  // fractional prod [head][part]
    {
      const float* qr = q_s + g * D;
      const bool on = g < G;
      // int8 K: 4 int8 q values per register in the order kdim8 (kdim8_frac) names.
      auto int8_frags = [&](auto kdim_of) { pack_i8_frags<D / 32>(qr, on, kdim_of, qb); };
      if constexpr (F16K || WIDE || FW) {
        auto kd = [&](int kc, int jj) { return FW ? frag::kdim_fwide<D>(t, kc, jj) : frag::kdim<D, KB>(t, kc, jj); };
#pragma unroll
        for (int kc = 0; kc < NKC; ++kc) {
          qb[kc][0] = on ? pack_half2(qr[kd(kc, 0)], qr[kd(kc, 1)]) : 0u;
          qb[kc][1] = on ? pack_half2(qr[kd(kc, 2)], qr[kd(kc, 3)]) : 0u;
        }
      } else if constexpr (FR != 0) {
        int8_frags([&](int kc, int j) { return frag::kdim8_frac<D, KB, KPR != 0>(t, kc, j); });
        qf0 = 2 * t < G ? qsc[4 * t] : 0.f;
        qg0 = 2 * t < G ? qsc[4 * t + 1] : 0.f;
        qf1 = 2 * t + 1 < G ? qsc[4 * t + 2] : 0.f;
        qg1 = 2 * t + 1 < G ? qsc[4 * t + 3] : 0.f;
      } else {
        if constexpr (kQ8) {  // lane t's D/4 bytes in a row, already in fragment order
          const uint2* src = reinterpret_cast<const uint2*>(q8 + g * kQ8Row + t * (D / 4));
#pragma unroll
          for (int kc = 0; kc < D / 32; ++kc) {
            const uint2 v = src[kc];  // rows g >= G: zeros (the prologue)
            qb[kc][0] = v.x;
            qb[kc][1] = v.y;
          }
        } else {
          int8_frags([&](int kc, int j) { return frag::kdim8<D, KB>(t, kc, j); });
        }
        qf0 = 2 * t < G ? qsc[2 * t] : 0.f;
        qf1 = 2 * t + 1 < G ? qsc[2 * t + 1] : 0.f;
      }
      if constexpr (KPR != 0) {  // prod: the query's int8 sketch (decode_prod.cuh)
        prod_q_frags<D>(scr + (on ? g : 0) * D, on, t, qsb);
        if constexpr (FR != 0) {  // per head and part: scale, Σ (decode_fprod.cuh)
#pragma unroll
          for (int hh = 0; hh < 2; ++hh)
            if (2 * t + hh < G)
#pragma unroll
              for (int p = 0; p < 2; ++p) { fqj[hh][p] = qx[4 * (2 * t + hh) + 2 * p]; fss[hh][p] = qx[4 * (2 * t + hh) + 2 * p + 1]; }
        } else {
        const float* qj = qsc + 2 * kMaxG;
        if (2 * t < G) { qj0 = qj[4 * t]; ss0 = qj[4 * t + 1]; }
        if (2 * t + 1 < G) { qj1 = qj[4 * t + 2]; ss1 = qj[4 * t + 3]; }
        }
      }
    }
    if constexpr (KPR != 0) consumers_sync();  // the sketch in scr: read by all before a warp's fold / epilogue

    if (trace_first) TQ_TRACE(4);
    float o[NKC][4];
#pragma unroll
    for (int mt = 0; mt < NKC; ++mt) o[mt][0] = o[mt][1] = o[mt][2] = o[mt][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // heads 2t, 2t+1
    float o2[VPR ? NKC : 1][4];  // prod V: the QJL term in the sketch domain (decode_prod.cuh)
#pragma unroll
    for (int mt = 0; mt < (VPR ? NKC : 1); ++mt) o2[mt][0] = o2[mt][1] = o2[mt][2] = o2[mt][3] = 0.f;

    // One 16-token block of this warp: S^T = K · Q^T, scaled by the K norms, masked past `len`
    // (-inf); also returns the V norms nv[r + 2p] of the lane's rows r (g, g + 8) and parts p.
    // Stage `st`, first token `tok0` of the warp's rows.
    auto score = [&](const uint8_t* st, int tok0, float (&x)[4], float (&nv)[2 * NP]) {
      // Stage rows of this lane's K tokens (QV: rows g, g + 8 of S^T read tokens 2g, 2g + 1).
      const int r0 = 16 * warp + (QV ? frag::quad_row_token(g) : g), r1 = QV ? r0 + 1 : r0 + 8;
      float sc[4] = {0.f, 0.f, 0.f, 0.f};
      if constexpr (F16K) {
        // Two accumulators (even / odd k-chunks): two independent HMMA chains.
        float sd[4] = {0.f, 0.f, 0.f, 0.f};
        const uint8_t* k0 = st + r0 * KCB + (D / 2) * t;
#pragma unroll
        for (int i = 0; i < D / 32; ++i) {
          const int u = (i + (t >> 1)) % (D / 32);
          const uint4 a = *reinterpret_cast<const uint4*>(k0 + 16 * u);
          const uint4 b = *reinterpret_cast<const uint4*>(k0 + 8 * KCB + 16 * u);
          mma(sc, a.x, b.x, a.y, b.y, qb[2 * i][0], qb[2 * i][1]);
          mma(sd, a.z, b.z, a.w, b.w, qb[2 * i + 1][0], qb[2 * i + 1][1]);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) sc[i] += sd[i];
      } else if constexpr (WIDE) {
        // Wide K: per k16-chunk 4 codes of each row through the shared fp16 table (frag::wide_k_frag),
        // f16 mma into two accumulators (even / odd chunks: two independent HMMA chains).
        float sd[4] = {0.f, 0.f, 0.f, 0.f};
        const uint32_t* k0 = reinterpret_cast<const uint32_t*>(st + r0 * KCB);
        const uint32_t* k1 = reinterpret_cast<const uint32_t*>(st + r1 * KCB);
#pragma unroll
        for (int u = 0; u < (NKC + 7) / 8; ++u) {
          const frag::WideRun<KB> w0 = frag::wide_k_run<D, KB>(k0, t, u), w1 = frag::wide_k_run<D, KB>(k1, t, u);
#pragma unroll
          for (int kc = 8 * u; kc < (NKC < 8 * u + 8 ? NKC : 8 * u + 8); ++kc) {
            uint32_t a[4];
            frag::wide_k_frag<KB>(wtab, w0, w1, kc, a);
            mma(kc & 1 ? sd : sc, a[0], a[1], a[2], a[3], qb[kc][0], qb[kc][1]);
          }
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) sc[i] += sd[i];
        if constexpr (KPR != 0) prod_k_score<D, KB>(st, r0, r1, t, qsb, qj0, qj1, ss0, ss1, sc);  // tq6p .. tq8p
      } else if constexpr (FW) {
        // Fractional wide: per part p, lane t's run of D/8 codes (frag::kdim_fwide) through the
        // part's fp16 table, k-chunks [p D/32, (p + 1) D/32) into the part's accumulator, scaled by
        // the part's K norm (q carries 1/sqrt(D/2)).
        float sp[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
        const uint32_t* k0 = reinterpret_cast<const uint32_t*>(st + r0 * KCB);
        const uint32_t* k1 = reinterpret_cast<const uint32_t*>(st + r1 * KCB);
        static_for<2>([&](auto pc) {
          constexpr int p = decltype(pc)::value, bp = p ? KB : KB + 1, w0 = GK::word(p * GK::kHi);
          const frag::WideRun<bp> w0r = frag::wide_k_run<D / 2, bp>(k0 + w0, t, 0);
          const frag::WideRun<bp> w1r = frag::wide_k_run<D / 2, bp>(k1 + w0, t, 0);
          const uint16_t* kt = wtab + (p ? 2 << KB : 0);
#pragma unroll
          for (int kc = 0; kc < D / 32; ++kc) {
            uint32_t a[4];
            frag::wide_k_frag<bp>(kt, w0r, w1r, kc, a);
            mma(sp[p], a[0], a[1], a[2], a[3], qb[p * (D / 32) + kc][0], qb[p * (D / 32) + kc][1]);
          }
        });
        // Part norms of a row at scalars 0 and 1 (prod: 0 and 2, the γ_p after each).
        constexpr int NS = KSB / 2, N1 = KPR ? 2 : 1;
        const __half* kn = reinterpret_cast<const __half*>(st + kChunk * KCB);
        const float n00 = __half2float(kn[NS * r0]), n01 = __half2float(kn[NS * r0 + N1]);
        const float n10 = __half2float(kn[NS * r1]), n11 = __half2float(kn[NS * r1 + N1]);
        sc[0] = sp[0][0] * n00 + sp[1][0] * n01;
        sc[1] = sp[0][1] * n00 + sp[1][1] * n01;
        sc[2] = sp[0][2] * n10 + sp[1][2] * n11;
        sc[3] = sp[0][3] * n10 + sp[1][3] * n11;
        if constexpr (KPR != 0) fprod_k_score<D, KB>(st, r0, r1, t, qsb, fqj, fss, sc);  // tq5.5p .. tq7.5p
      } else if constexpr (FR != 0) {
        // Fractional: k32-chunk q = group q (lane t: its selector word t), one accumulator per
        // part, each scaled by its q scale and K norm.
        int si[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
        const uint32_t* k0 = reinterpret_cast<const uint32_t*>(st + r0 * KCB);
        const uint32_t* k1 = reinterpret_cast<const uint32_t*>(st + r1 * KCB);
        static_for<D / 32>([&](auto qc) {
          constexpr int q = decltype(qc)::value, bq = GK::bits(q), pq = GK::part(q);
          if constexpr (bq != 0) {  // (tq1.5p: part 1 has no mse codes)
            const uint32_t s0 = frag::sel_in_group<bq>(k0 + GK::word(q), t);
            const uint32_t s1 = frag::sel_in_group<bq>(k1 + GK::word(q), t);
            const uint32_t* tb = pq ? ktab8b : ktab8;
            mma_s8(si[pq], frag::lookup_i8<bq>(tb, s0), frag::lookup_i8<bq>(tb, s1),
                   frag::lookup_i8<bq>(tb, frag::mulhi(s0, P.shifts.shr16)),
                   frag::lookup_i8<bq>(tb, frag::mulhi(s1, P.shifts.shr16)), qb[q][0], qb[q][1]);
          }
        });
        // Part norms of a row at scalars 0 and 1 (prod: 0 and 2, the γ_p after each).
        constexpr int NS = KSB / 2, N1 = KPR ? 2 : 1;
        const __half* kn = reinterpret_cast<const __half*>(st + kChunk * KCB);
        const float n00 = __half2float(kn[NS * r0]), n01 = __half2float(kn[NS * r0 + N1]);
        const float n10 = __half2float(kn[NS * r1]), n11 = __half2float(kn[NS * r1 + N1]);
        sc[0] = float(si[0][0]) * qf0 * n00 + float(si[1][0]) * qg0 * n01;
        sc[1] = float(si[0][1]) * qf1 * n00 + float(si[1][1]) * qg1 * n01;
        sc[2] = float(si[0][2]) * qf0 * n10 + float(si[1][2]) * qg0 * n11;
        sc[3] = float(si[0][3]) * qf1 * n10 + float(si[1][3]) * qg1 * n11;
        if constexpr (KPR != 0) fprod_k_score<D, KB>(st, r0, r1, t, qsb, fqj, fss, sc);
      } else {
        // int8 K: per k32-chunk one selector word per row, 4 prmt, one mma; two accumulators.
        int si[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
        const uint32_t* k0 = reinterpret_cast<const uint32_t*>(st + r0 * KCB);
        const uint32_t* k1 = reinterpret_cast<const uint32_t*>(st + r1 * KCB);
        if (TQ_DROP(0)) {
#pragma unroll
          for (int w = 0; w < D / 32; ++w) {
            const uint32_t s0 = frag::k_sel_word<D, KB>(k0, t, w, P.shifts);
            const uint32_t s1 = frag::k_sel_word<D, KB>(k1, t, w, P.shifts);
            mma_s8(si[w & 1], s0, s1, frag::mulhi(s0, P.shifts.shr16), frag::mulhi(s1, P.shifts.shr16), qb[w][0], qb[w][1]);
          }
        } else {
#pragma unroll
        for (int w = 0; w < D / 32; ++w) {
          const uint32_t s0 = frag::k_sel_word<D, KB>(k0, t, w, P.shifts);
          const uint32_t s1 = frag::k_sel_word<D, KB>(k1, t, w, P.shifts);
          mma_s8(si[w & 1], frag::lookup_i8<KB>(ktab8, s0), frag::lookup_i8<KB>(ktab8, s1),
                 frag::lookup_i8<KB>(ktab8, frag::mulhi(s0, P.shifts.shr16)),
                 frag::lookup_i8<KB>(ktab8, frag::mulhi(s1, P.shifts.shr16)), qb[w][0], qb[w][1]);
        }
        }
        sc[0] = float(si[0][0] + si[1][0]) * qf0;
        sc[1] = float(si[0][1] + si[1][1]) * qf1;
        sc[2] = float(si[0][2] + si[1][2]) * qf0;
        sc[3] = float(si[0][3] + si[1][3]) * qf1;
        if constexpr (KPR != 0) prod_k_score<D, KB>(st, r0, r1, t, qsb, qj0, qj1, ss0, ss1, sc);
      }
      float nk0 = 1.f, nk1 = 1.f;
#pragma unroll
      for (int i = 0; i < 2 * NP; ++i) nv[i] = 1.f;
      if constexpr (KB != 0 && FR == 0) {
        const __half* kn = reinterpret_cast<const __half*>(st + kChunk * KCB);
        nk0 = __half2float(kn[(KSB / 2) * r0]);  // prod: (norm, gamma) pairs
        nk1 = __half2float(kn[(KSB / 2) * r1]);
      }
      if constexpr (!F16V) {
        const __half* vn = reinterpret_cast<const __half*>(st + VOFF + kChunk * VCB);
        if constexpr (FR != 0 && VPR != 0) {  // (n_0, γ_0, n_1, γ_1): sets n_0, n_1, n_0 γ_0, n_1 γ_1
#pragma unroll
          for (int p = 0; p < 2; ++p) {
            nv[2 * p] = __half2float(vn[4 * r0 + 2 * p]);
            nv[2 * p + 1] = __half2float(vn[4 * r1 + 2 * p]);
            nv[4 + 2 * p] = nv[2 * p] * __half2float(vn[4 * r0 + 2 * p + 1]);
            nv[4 + 2 * p + 1] = nv[2 * p + 1] * __half2float(vn[4 * r1 + 2 * p + 1]);
          }
        } else {
#pragma unroll
        for (int p = 0; p < NP; ++p) {
          nv[2 * p] = __half2float(vn[NP * r0 + p]);
          nv[2 * p + 1] = __half2float(vn[NP * r1 + p]);
        }
        if constexpr (VPR != 0) { nv[2] *= nv[0]; nv[3] *= nv[1]; }  // prod: the QJL weight n γ
        }
      }
      x[0] = sc[0] * nk0; x[1] = sc[1] * nk0; x[2] = sc[2] * nk1; x[3] = sc[3] * nk1;
      // Rows past the end: score -inf (p = 0) and V norm 0 (norms there may be anything, and
      // 0 * NaN would reach the tensor cores).
      if (tok0 + 16 > len) {  // warp-uniform: only the last block of a sequence is partial
        if (tok0 + r0 - 16 * warp >= len) {
          x[0] = x[1] = -INFINITY;
#pragma unroll
          for (int p = 0; p < NP; ++p) nv[2 * p] = 0.f;
        }
        if (tok0 + r1 - 16 * warp >= len) {
          x[2] = x[3] = -INFINITY;
#pragma unroll
          for (int p = 0; p < NP; ++p) nv[2 * p + 1] = 0.f;
        }
      }
    };
    // Running max (log2 domain) of heads 2t, 2t+1 over the scores of `nblk` blocks. It only moves
    // when some lane sees a larger score (rare after the first steps): the shuffle reduction and the
    // rescale of l and the accumulators run only then.
    auto raise_max = [&](float (*x)[4], int nblk) {
      float mx0 = -INFINITY, mx1 = -INFINITY;
      for (int k = 0; k < nblk; ++k) mx0 = fmaxf(mx0, fmaxf(x[k][0], x[k][2])), mx1 = fmaxf(mx1, fmaxf(x[k][1], x[k][3]));
      if (__any_sync(0xffffffffu, mx0 > m0 || mx1 > m1)) {
#pragma unroll
        for (int off = 4; off < 32; off <<= 1) {
          mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
          mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
        }
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);  // finite: row 0 is a valid token
        const float al0 = ex2(m0 - mn0), al1 = ex2(m1 - mn1);
        l0 *= al0;
        l1 *= al1;
#pragma unroll
        for (int mt = 0; mt < NKC; ++mt) {
          o[mt][0] *= al0; o[mt][2] *= al0;
          o[mt][1] *= al1; o[mt][3] *= al1;
        }
#pragma unroll
        for (int mt = 0; mt < (VPR ? NKC : 0); ++mt) {
          o2[mt][0] *= al0; o2[mt][2] *= al0;
          o2[mt][1] *= al1; o2[mt][3] *= al1;
        }
        m0 = mn0;
        m1 = mn1;
      }
    };
    // Online softmax (log2 domain) over the scores of `nblk` blocks at once: one max update, then
    // the P^T fragments per part (V norm applied, masked rows weight 0: norms past the end may be
    // anything).
    auto softmax = [&](float (*x)[4], float (*nv)[2 * NP], int nblk, uint32_t (*pb)[NP][2]) {
      if (TQ_DROP(2)) {
        for (int k = 0; k < nblk; ++k)
#pragma unroll
          for (int p = 0; p < NP; ++p) {
            pb[k][p][0] = movm(pack_half2(x[k][0] * nv[k][2 * p], x[k][1] * nv[k][2 * p]));
            pb[k][p][1] = movm(pack_half2(x[k][2] * nv[k][2 * p + 1], x[k][3] * nv[k][2 * p + 1]));
          }
        return;
      }
      raise_max(x, nblk);
      for (int k = 0; k < nblk; ++k) {
        const float p0 = ex2(x[k][0] - m0), p1 = ex2(x[k][1] - m1), p2 = ex2(x[k][2] - m0), p3 = ex2(x[k][3] - m1);
        l0 += p0 + p2;
        l1 += p1 + p3;
#pragma unroll
        for (int p = 0; p < NP; ++p) {
          const float na = nv[k][2 * p], nb = nv[k][2 * p + 1];
          pb[k][p][0] = movm(pack_half2(p0 * na, p1 * na));
          pb[k][p][1] = movm(pack_half2(p2 * nb, p3 * nb));
        }
      }
    };
    // O^T += V^T · P^T for one block (pbk: the P^T fragments of each part).
    auto pv = [&](const uint8_t* st, int tok0, const uint32_t (&pbk)[NP][2]) {
      const uint32_t pb0 = pbk[0][0], pb1 = pbk[0][1];
      if constexpr (F16V) {
        // fp16 V: rows of tokens g and g+8 transposed by movmatrix. Tokens past the end may hold
        // anything (NaN * 0 = NaN on the tensor cores): zero them in the last partial step.
        uint32_t mk01 = 0xFFFFFFFFu, mk89 = 0xFFFFFFFFu;
        if (tok0 + 16 > len) {
          mk01 = (tok0 + 2 * t < len ? 0xFFFFu : 0u) | (tok0 + 2 * t + 1 < len ? 0xFFFF0000u : 0u);
          mk89 = (tok0 + 2 * t + 8 < len ? 0xFFFFu : 0u) | (tok0 + 2 * t + 9 < len ? 0xFFFF0000u : 0u);
        }
        const uint8_t* vr = st + VOFF + (16 * warp + g) * VCB + (D / 2) * t;
#pragma unroll
        for (int i = 0; i < D / 32; ++i) {
          const int u = (i + (t >> 1)) % (D / 32);
          const uint4 a = *reinterpret_cast<const uint4*>(vr + 16 * u);
          const uint4 b = *reinterpret_cast<const uint4*>(vr + 8 * VCB + 16 * u);
          mma(o[2 * i], movm(a.x) & mk01, movm(a.y) & mk01, movm(b.x) & mk89, movm(b.y) & mk89, pb0, pb1);
          mma(o[2 * i + 1], movm(a.z) & mk01, movm(a.w) & mk01, movm(b.z) & mk89, movm(b.w) & mk89, pb0, pb1);
        }
      } else if constexpr (WIDE) {
        // Wide V (frag::vdim_wide): lane g's run of tokens A, B = 2t, 2t+1 and C, D = 2t+8, 2t+9,
        // 2 codes per token per m-tile through the shared fp16 table.
        const uint32_t* rA = reinterpret_cast<const uint32_t*>(st + VOFF + (16 * warp + 2 * t) * VCB);
        const uint16_t* vt = wtab + (1 << KB);
        const frag::WideRun<VB> wa = frag::wide_v_run<D, VB>(rA, g), wb = frag::wide_v_run<D, VB>(rA + VCB / 4, g);
        const frag::WideRun<VB> wc = frag::wide_v_run<D, VB>(rA + 8 * VCB / 4, g), wd = frag::wide_v_run<D, VB>(rA + 9 * VCB / 4, g);
#pragma unroll
        for (int mt = 0; mt < NKC; ++mt) {
          uint32_t a[4];
          frag::wide_v_frag<VB>(vt, wa, wb, wc, wd, mt, a);
          mma(o[mt], a[0], a[1], a[2], a[3], pb0, pb1);
        }
        if constexpr (VPR != 0) prod_v_pv<D, VB>(st + VOFF, warp, g, t, o2, pbk[1][0], pbk[1][1]);  // tq6p .. tq8p
      } else if constexpr (FW) {
        // Fractional wide V (frag::vdim_frac order): m-tiles 2q, 2q + 1 = group q; lane g's 4 codes
        // of the group per token (frag::frac_wide_run) through the part's fp16 table.
        const uint32_t* rA = reinterpret_cast<const uint32_t*>(st + VOFF + (16 * warp + 2 * t) * VCB);
        const uint32_t* rB = rA + VCB / 4;
        const uint32_t* rC = rA + 8 * VCB / 4;
        const uint32_t* rD = rC + VCB / 4;
        static_for<D / 32>([&](auto qc) {
          constexpr int q = decltype(qc)::value, bq = GV::bits(q), pq = GV::part(q);
          const uint16_t* vt = wtab + (3 << KB) + (pq ? 2 << KB : 0);
          const frag::FracRun<bq> ra = frag::frac_wide_run<bq>(rA + GV::word(q), g), rb = frag::frac_wide_run<bq>(rB + GV::word(q), g);
          const frag::FracRun<bq> rc = frag::frac_wide_run<bq>(rC + GV::word(q), g), rd = frag::frac_wide_run<bq>(rD + GV::word(q), g);
#pragma unroll
          for (int hf = 0; hf < 2; ++hf) {
            uint32_t a[4];
            frag::frac_wide_v_frag<bq>(vt, ra, rb, rc, rd, hf, a);
            mma(o[2 * q + hf], a[0], a[1], a[2], a[3], pbk[pq][0], pbk[pq][1]);
          }
        });
        if constexpr (VPR != 0) fprod_v_pv<D, VB>(st + VOFF, warp, g, t, o2, pbk);  // tq5.5p .. tq7.5p
      } else if constexpr (FR != 0) {
        // Fractional V (frag::vdim_frac): m-tiles 2q, 2q + 1 = group q; lane g decodes selector
        // word g/2 of the group for tokens A, B, C, D and keeps nibbles of parity g % 2.
        const uint32_t* rA = reinterpret_cast<const uint32_t*>(st + VOFF + (16 * warp + 2 * t) * VCB);
        const uint32_t* rB = rA + VCB / 4;
        const uint32_t* rC = rA + 8 * VCB / 4;
        const uint32_t* rD = rC + VCB / 4;
        const int i = g >> 1, e = g & 1;
        static_for<D / 32>([&](auto qc) {
          constexpr int q = decltype(qc)::value, bq = GV::bits(q), pq = GV::part(q);
          if constexpr (bq != 0) {  // (tq1.5p: part 1 has no mse codes)
            const frag::Sel ab = frag::prep<bq>(frag::merged_sel<bq>(rA + GV::word(q), rB + GV::word(q), i, e), P.shifts);
            const frag::Sel cd = frag::prep<bq>(frag::merged_sel<bq>(rC + GV::word(q), rD + GV::word(q), i, e), P.shifts);
            const uint32_t* tb = pq ? vtabb : vtab;
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
              uint32_t a0, a1, a2, a3;
              frag::lookup_half2<bq>(tb, hf ? frag::upper(ab, P.shifts) : ab, a0, a1);
              frag::lookup_half2<bq>(tb, hf ? frag::upper(cd, P.shifts) : cd, a2, a3);
              mma(o[2 * q + hf], a0, a1, a2, a3, pbk[pq][0], pbk[pq][1]);
            }
          }
        });
        if constexpr (VPR != 0) fprod_v_pv<D, VB>(st + VOFF, warp, g, t, o2, pbk);  // tq(B+1).5p
      } else {
        // TurboQuant V: tokens A, B = 2t, 2t+1 and C, D = 2t+8, 2t+9 of the warp's 16.
        const uint32_t* rA = reinterpret_cast<const uint32_t*>(st + VOFF + (16 * warp + 2 * t) * VCB);
        const uint32_t* rB = rA + VCB / 4;
        const uint32_t* rC = rA + 8 * VCB / 4;
        const uint32_t* rD = rC + VCB / 4;
#pragma unroll
        for (int w = 0; w < D / 64; ++w) {
          const int sw = g * (D / 64) + w;
          const uint32_t sA = frag::sel_word<VB>(rA, sw), sB = frag::sel_word<VB>(rB, sw);
          const uint32_t sC = frag::sel_word<VB>(rC, sw), sD = frag::sel_word<VB>(rD, sw);
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const frag::Sel ab = frag::prep<VB>(frag::merge_sel(sA, sB, e, P.shifts), P.shifts);
            const frag::Sel cd = frag::prep<VB>(frag::merge_sel(sC, sD, e, P.shifts), P.shifts);
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
              uint32_t a0, a1, a2, a3;
              if (TQ_DROP(1)) {
                a0 = hf ? frag::upper(ab, P.shifts).idx : ab.idx; a1 = a0 ^ 0x1111u;
                a2 = hf ? frag::upper(cd, P.shifts).idx : cd.idx; a3 = a2 ^ 0x1111u;
              } else {
                frag::lookup_half2<VB>(vtab, hf ? frag::upper(ab, P.shifts) : ab, a0, a1);
                frag::lookup_half2<VB>(vtab, hf ? frag::upper(cd, P.shifts) : cd, a2, a3);
              }
              mma(o[4 * w + 2 * e + hf], a0, a1, a2, a3, pb0, pb1);
            }
          }
        }
        if constexpr (VPR != 0) prod_v_pv<D, VB>(st + VOFF, warp, g, t, o2, pbk[1][0], pbk[1][1]);
      }
    };

    // Quad V: the online softmax of `nblk` blocks (1 or 2), then P^T as u8 (decode_quad.cuh).
    auto softmax_q = [&](float (*x)[4], float (*nv)[2 * NP], int nblk, uint32_t (&bq)[2], float& f0, float& f1) {
      raise_max(x, nblk);
      float w[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
      for (int k = 0; k < nblk; ++k) {
        const float p0 = ex2(x[k][0] - m0), p1 = ex2(x[k][1] - m1), p2 = ex2(x[k][2] - m0), p3 = ex2(x[k][3] - m1);
        l0 += p0 + p2;
        l1 += p1 + p3;
        w[k][0] = p0 * nv[k][0]; w[k][1] = p1 * nv[k][0]; w[k][2] = p2 * nv[k][1]; w[k][3] = p3 * nv[k][1];
      }
      quad::p_transposed(w, nblk, P.vdeq, bq, f0, f1);
    };
    auto pv_q = [&](const uint8_t* sA, const uint8_t* sB, uint32_t b0, uint32_t b1, float f0, float f1) {
      uint32_t vtab8[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) vtab8[i] = VB == 4 || i < 2 ? vtab8_s[i] : 0u;
      quad::pv<D, VB, VCB>(sA + VOFF, sB + VOFF, b0, b1, f0, f1, vtab8, P.shifts, o, warp, lane);
    };

    // TurboQuant K: two chunks (two stages of the ring) per iteration when both hold tokens for
    // this warp: the two blocks' lookups and mma chains are independent work for the scheduler,
    // and the softmax bookkeeping (max vote, rescale) runs once per 32 tokens (H200, tq3 B=32
    // T=128K: 1649 -> 1566 us). fp16 K/V stays at one block: it is memory-bound, and the pair needs
    // registers it does not have (128, spills).
    constexpr bool kPairs = KB != 0 && !PR && !WIDE && !FW;  // wide: one block, as fp16 (pairs spill at D = 128)
    // Drop bit 4: scores made up from the token index (K never read).
    [[maybe_unused]] auto fake_scores = [&](float (*x)[4], float (*nv)[2 * NP], int tokA, int tokB) {
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        x[k][0] = x[k][2] = 1e-3f * float(tokA + k + g);
        x[k][1] = x[k][3] = 1e-3f * float(tokB + k + t);
#pragma unroll
        for (int i = 0; i < 2 * NP; ++i) nv[k][i] = 1.f;
      }
    };
    for (int j = 0; j < cnt;) {
      int s2 = s + 1;
      uint32_t ph2 = ph;
      if (s2 == P.stages) { s2 = 0; ph2 ^= 1u; }
      const bool two = kPairs && j + 1 < cnt;
      const int tokA = (cur.ch + j) * kChunk + 16 * warp, tokB = tokA + kChunk;  // row 0 of this warp
      mbar_wait(&full[s], ph);
      if (two) mbar_wait(&full[s2], ph2);
      if (trace_first && j == 0) TQ_TRACE(5);
      const bool okA = stage_ok[s] && tokA < len;
      const bool okB = two && stage_ok[s2] && tokB < len;
      const uint8_t* stA = smem + s * SB;
      const uint8_t* stB = smem + s2 * SB;
      float x[2][4], nv[2][2 * NP];
      uint32_t pb[2][NP][2];
      if (TQ_DROP(5)) {
        // nothing: the ring alone (loads, barriers)
      } else if constexpr (QV != 0) {
        if (okA || okB) {
          uint32_t bq[2];
          float f0, f1;
          if (okA && okB) {
            if (TQ_DROP(4)) {
              fake_scores(x, nv, tokA, tokB);
            } else {
              score(stA, tokA, x[0], nv[0]);
              score(stB, tokB, x[1], nv[1]);
            }
            softmax_q(x, nv, 2, bq, f0, f1);
            if (TQ_DROP(3)) o[0][0] += __uint_as_float(bq[0] ^ bq[1]) * f0 + f1;  // no PV: keep the softmax alive
            else pv_q(stA, stB, bq[0], bq[1], f0, f1);
          } else {
            const uint8_t* st = okA ? stA : stB;
            score(st, okA ? tokA : tokB, x[0], nv[0]);
            softmax_q(x, nv, 1, bq, f0, f1);
            if (TQ_DROP(3)) o[0][0] += __uint_as_float(bq[0]) * f0 + f1;
            else pv_q(st, st, bq[0], 0u, f0, f1);
          }
        }
      } else if (okA && okB) {
        if (TQ_DROP(4)) {
          fake_scores(x, nv, tokA, tokB);
        } else {
          score(stA, tokA, x[0], nv[0]);
          score(stB, tokB, x[1], nv[1]);
        }
        softmax(x, nv, 2, pb);
#if defined(TQ_DECODE_PROBE)  // the PV of another design (decode_probe.cuh), tq3 V only
        if constexpr (VB == 3 && !FR && !PR) {
          const uint32_t pa[2] = {pb[0][0][0], pb[0][0][1]}, pq[2] = {pb[1][0][0], pb[1][0][1]};
#if TQ_PROBE_KIND == 4
          probe::pv_smem<D, VCB>(stA + VOFF, pa, vpair, P.shifts, o, warp, lane, g, t);
          probe::pv_smem<D, VCB>(stB + VOFF, pq, vpair, P.shifts, o, warp, lane, g, t);
#else
          probe::pv_pair<D, VCB, TQ_PROBE_KIND>(stA + VOFF, stB + VOFF, pa, pq, ktab8, vtab, P.shifts, o, warp, lane, g, t);
#endif
        } else
#endif
        if (!TQ_DROP(3)) {
          pv(stA, tokA, pb[0]);
          pv(stB, tokB, pb[1]);
        } else {
#pragma unroll
          for (int k = 0; k < 2; ++k) o[k][0] += __uint_as_float(pb[k][0][0] ^ pb[k][0][1]);
        }
      } else if (okA || okB) {
        const uint8_t* st = okA ? stA : stB;
        const int tk = okA ? tokA : tokB;
        score(st, tk, x[0], nv[0]);
        softmax(x, nv, 1, pb);
#if defined(TQ_DECODE_PROBE)
        if constexpr (VB == 3 && !FR && !PR) {
          const uint32_t pa[2] = {pb[0][0][0], pb[0][0][1]};
#if TQ_PROBE_KIND == 4
          probe::pv_smem<D, VCB>(st + VOFF, pa, vpair, P.shifts, o, warp, lane, g, t);
#else
          probe::pv_pair<D, VCB, TQ_PROBE_KIND>(st + VOFF, st + VOFF, pa, pa, ktab8, vtab, P.shifts, o, warp, lane, g, t);
#endif
        } else {
          pv(st, tk, pb[0]);
        }
#else
        pv(st, tk, pb[0]);
#endif
      }
      // Every lane releases its own reads of the stage (mbarrier.arrive orders only the arriving
      // thread's accesses; one lane after __syncwarp is what compute-sanitizer racecheck flagged as
      // a ring-reuse race, 7 hazards on CudaDecode.LongSegmentsMergeInTwoLevels).
      mbar_arrive(&empty[s]);
      if (two) mbar_arrive(&empty[s2]);
      if (two) { s = s2 + 1; ph = ph2; if (s == P.stages) { s = 0; ph ^= 1u; } j += 2; }
      else { s = s2; ph = ph2; j += 1; }
    }

    if (trace_first) TQ_TRACE(6);
    if constexpr (VPR != 0) prod_v_fold<D, FR ? VM0 : 0>(P.vfold, scr + warp * G * D, G, g, t, lane, o2, o);  // O += κ√D S^T O2
    // Segment epilogue: merge the 4 warps, then (if shared) the CTAs, then write.
    segment_epilogue<D, VB, FR, QV, VPR>(P, o, m0, m1, l0, l1, q_s, scr, scr_ml, misc, cur.b, cur.hk, G, sid, first, count, tid, warp,
                                    lane, g, t, trace_first, trace_t0);
    consumers_sync();  // q_s / scr are rewritten by the next segment
    if (trace_first) TQ_TRACE(11);
    c += cnt;
    if (c < end) next_segment(cur, prefix, Hkv);
  }
}

}  // namespace tq::cuda::v3
