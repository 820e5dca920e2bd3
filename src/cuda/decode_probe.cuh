// src/cuda/decode_probe.cuh — speed probes of other PV designs for the v3 decode kernel (tq3 V,
// included only by -DTQ_DECODE_PROBE / -DTQ_DECODE_DROP builds; bench/cuda/probe_on_box.sh).
// Each replaces the PV of a block pair (or one block) of decode_v3.cuh; K, softmax and loads stay.
// Kinds 1-3 give wrong results by design (they measure instruction streams); kind 4 is exact.
//   1  PV on mma.m16n8k32.e4m3 from a fragment-native V layout: a selector word = 4 tokens x 2
//      dims, built from the 2-bit / 1-bit planes like K's; P^T by cvt.e4m3x2.f16x2. (sm_90 lowers
//      this mma to F2FP unpacks + 2 HMMA: docs/CUDA.md "Session 6".)
//   2  the same on int8 (IMMA): K's int8 table, P^T as u8 by one HFMA2 per 2 tokens, the pair's
//      block max by shuffles, int32 accumulators converted and added with the block's weight.
//   3  int8 as 2, from today's layout: the lane's tokens 2t, 2t+1, 2t+8, 2t+9 merged as the fp16
//      path does, bytes interleaved into 4-token words.
//   4  today's layout and fp16 PV, the V lookups from a shared-memory table of token pairs
//      instead of prmt (the issue's "prmt or shared-memory tables: measure which").
#pragma once
#include <cstdint>

#include "cuda/decode_frag.h"
#include "cuda/decode_ptx.cuh"

#ifndef TQ_PROBE_KIND
#define TQ_PROBE_KIND 1
#endif

namespace tq::cuda::v3::probe {

// Lane (g, t) = 4g + t of a consumer warp; vs = the stage's V codes (16-token block of warp
// `warp` at row 16 warp); o[D/16][4] the PV accumulators (rows = V dims, cols = heads 2t, 2t+1).

// Kinds 1-3 over a pair of blocks A, B (k32 = 16 tokens of each); pA / pB = P^T of the blocks as
// half2 (head g; tokens 2t, 2t+1 and 2t+8, 2t+9).
template <int D, int VCB, int KIND>
__device__ __forceinline__ void pv_pair(const uint8_t* vA, const uint8_t* vB, const uint32_t (&pA)[2],
                                        const uint32_t (&pB)[2], const uint32_t (&ktab8)[4], const uint32_t (&vtab)[8],
                                        const frag::Shifts& S, float (&o)[D / 16][4], int warp, int lane, int g, int t) {
  constexpr int NKC = D / 16;
  if constexpr (KIND == 1) {
    auto e4x4 = [](uint32_t h0, uint32_t h1) {
      unsigned short lo, hi;
      asm("cvt.rn.satfinite.e4m3x2.f16x2 %0, %1;" : "=h"(lo) : "r"(h0));
      asm("cvt.rn.satfinite.e4m3x2.f16x2 %0, %1;" : "=h"(hi) : "r"(h1));
      return uint32_t(lo) | (uint32_t(hi) << 16);
    };
    const uint32_t b0 = e4x4(pA[0], pA[1]), b1 = e4x4(pB[0], pB[1]);
    // m-tile mt = 4j + i: selector word i of group j of each block (rows g, g + 8: low / high half)
    const uint32_t* gA = reinterpret_cast<const uint32_t*>(vA + 16 * warp * VCB) + 3 * lane;
    const uint32_t* gB = reinterpret_cast<const uint32_t*>(vB + 16 * warp * VCB) + 3 * lane;
#pragma unroll
    for (int mt = 0; mt < NKC; ++mt) {
      const uint32_t sa = frag::sel_in_group<3>(gA + 96 * (mt >> 2), mt & 3), sb = frag::sel_in_group<3>(gB + 96 * (mt >> 2), mt & 3);
      const uint32_t a0 = frag::prmt(vtab[0], vtab[1], sa), a1 = frag::prmt(vtab[0], vtab[1], frag::mulhi(sa, S.shr16));
      const uint32_t a2 = frag::prmt(vtab[0], vtab[1], sb), a3 = frag::prmt(vtab[0], vtab[1], frag::mulhi(sb, S.shr16));
      asm("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
          : "+f"(o[mt][0]), "+f"(o[mt][1]), "+f"(o[mt][2]), "+f"(o[mt][3])
          : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    }
  } else {
    const uint32_t kMagic = 0x66006600u, k127 = 0x57F057F0u;  // half2(1536), half2(127)
    auto u8x4 = [&](uint32_t h0, uint32_t h1) {  // p * 127 + 1536: the integer lands in the low byte
      uint32_t x0, x1;
      asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(x0) : "r"(h0), "r"(k127), "r"(kMagic));
      asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(x1) : "r"(h1), "r"(k127), "r"(kMagic));
      return frag::prmt(x0, x1, 0x6420u);
    };
    const uint32_t b0 = u8x4(pA[0], pA[1]), b1 = u8x4(pB[0], pB[1]);
    float w0 = fmaxf(fabsf(__uint_as_float(pA[0])), fabsf(__uint_as_float(pB[1])));
    float w1 = fmaxf(fabsf(__uint_as_float(pA[1])), fabsf(__uint_as_float(pB[0])));
#pragma unroll
    for (int off = 4; off < 32; off <<= 1) {  // the pair's block max (its cost, not its value)
      w0 = fmaxf(w0, __shfl_xor_sync(0xffffffffu, w0, off));
      w1 = fmaxf(w1, __shfl_xor_sync(0xffffffffu, w1, off));
    }
    w0 = ex2(w0 * 1e-30f);
    w1 = ex2(w1 * 1e-30f);
    auto acc_mma = [&](int mt, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3) {
      int acc[4] = {0, 0, 0, 0};
      mma_s8(acc, a0, a1, a2, a3, b0, b1);
      o[mt][0] = fmaf(float(acc[0]), w0, o[mt][0]);
      o[mt][1] = fmaf(float(acc[1]), w1, o[mt][1]);
      o[mt][2] = fmaf(float(acc[2]), w0, o[mt][2]);
      o[mt][3] = fmaf(float(acc[3]), w1, o[mt][3]);
    };
    auto i8 = [&](uint32_t s) { return frag::prmt(ktab8[0], ktab8[1], s); };
    if constexpr (KIND == 3) {
      auto quads = [&](const uint8_t* v, int w, int e, uint32_t (&r)[4]) {
        const uint32_t* rA = reinterpret_cast<const uint32_t*>(v + (16 * warp + 2 * t) * VCB);
        const uint32_t* rB = rA + VCB / 4;
        const uint32_t* rC = rA + 8 * VCB / 4;
        const uint32_t* rD = rC + VCB / 4;
        const int sw = g * (D / 64) + w;
        const uint32_t ab = frag::merge_sel(frag::sel_word<3>(rA, sw), frag::sel_word<3>(rB, sw), e, S);
        const uint32_t cd = frag::merge_sel(frag::sel_word<3>(rC, sw), frag::sel_word<3>(rD, sw), e, S);
        const uint32_t lo = frag::prmt(ab, cd, 0x5140u), hi = frag::prmt(ab, cd, 0x7362u);
        r[0] = i8(lo);
        r[1] = i8(frag::mulhi(lo, S.shr16));
        r[2] = i8(hi);
        r[3] = i8(frag::mulhi(hi, S.shr16));
      };
#pragma unroll
      for (int w = 0; w < D / 64; ++w)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          uint32_t ra[4], rb[4];
          quads(vA, w, e, ra);
          quads(vB, w, e, rb);
#pragma unroll
          for (int h = 0; h < 2; ++h) acc_mma(4 * w + 2 * e + h, ra[2 * h], ra[2 * h + 1], rb[2 * h], rb[2 * h + 1]);
        }
    } else {
      const uint32_t* gA = reinterpret_cast<const uint32_t*>(vA + 16 * warp * VCB) + 3 * lane;
      const uint32_t* gB = reinterpret_cast<const uint32_t*>(vB + 16 * warp * VCB) + 3 * lane;
#pragma unroll
      for (int mt = 0; mt < NKC; ++mt) {
        const uint32_t sa = frag::sel_in_group<3>(gA + 96 * (mt >> 2), mt & 3), sb = frag::sel_in_group<3>(gB + 96 * (mt >> 2), mt & 3);
        acc_mma(mt, i8(sa), i8(frag::mulhi(sa, S.shr16)), i8(sb), i8(frag::mulhi(sb, S.shr16)));
      }
    }
  }
}

// Kind 4's table: entry e = A | B << 3 of two 3-bit codes is half2(c[A], c[B]), one copy per lane
// (column = lane: conflict-free); vtab in frag::make_table's format. Called before the setup barrier.
__device__ __forceinline__ void fill_pair_table(uint32_t* vpair, const uint32_t (&vtab)[8], int tid, int threads) {
  auto cent = [&](int i) {
    return ((vtab[i >> 2] >> (8 * (i & 3))) & 0xFFu) | (((vtab[4 + (i >> 2)] >> (8 * (i & 3))) & 0xFFu) << 8);
  };
  for (int x = tid; x < 64 * 32; x += threads) vpair[x] = cent((x >> 5) & 7) | (cent(x >> 8) << 16);
}  // (visible to all after the kernel's setup barrier)

// Kind 4, one block: the merges build bytes A | B << 3, one prmt extracts a byte, one address, one
// LDS per half2 (instead of two prmt per half2). pk = P^T of the block as half2.
template <int D, int VCB>
__device__ __forceinline__ void pv_smem(const uint8_t* v, const uint32_t (&pk)[2], const uint32_t* vpair,
                                        const frag::Shifts& S, float (&o)[D / 16][4], int warp, int lane, int g, int t) {
  const uint32_t* rA = reinterpret_cast<const uint32_t*>(v + (16 * warp + 2 * t) * VCB);
  const uint32_t* rB = rA + VCB / 4;
  const uint32_t* rC = rA + 8 * VCB / 4;
  const uint32_t* rD = rC + VCB / 4;
  auto merge3 = [&](uint32_t a, uint32_t b, int e) {
    return e == 0 ? (a & 0x07070707u) | ((b * 8u) & 0x38383838u)
                  : (frag::mulhi(a, S.shr4) & 0x07070707u) | (frag::mulhi(b, 1u << 31) & 0x38383838u);
  };
  auto lk = [&](uint32_t m, int j) { return vpair[frag::prmt(m, 0u, 0x4440u + uint32_t(j)) * 32 + lane]; };
#pragma unroll
  for (int w = 0; w < D / 64; ++w) {
    const int sw = g * (D / 64) + w;
    const uint32_t sA = frag::sel_word<3>(rA, sw), sB = frag::sel_word<3>(rB, sw);
    const uint32_t sC = frag::sel_word<3>(rC, sw), sD = frag::sel_word<3>(rD, sw);
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const uint32_t ab = merge3(sA, sB, e), cd = merge3(sC, sD, e);
#pragma unroll
      for (int hf = 0; hf < 2; ++hf)
        mma(o[4 * w + 2 * e + hf], lk(ab, 2 * hf), lk(ab, 2 * hf + 1), lk(cd, 2 * hf), lk(cd, 2 * hf + 1), pk[0], pk[1]);
    }
  }
}

}  // namespace tq::cuda::v3::probe
