// src/cuda/decode_frag.h — how the v3 decode kernel (decode_v3.cuh) turns packed codes into
// tensor-core fragments. Host + device (g++ and nvcc): the CPU tests (tests/cuda/test_decode_frag.cpp)
// check every mapping here against layout.h's reference unpacking, without a GPU.
//
// Roles (mma.sync m16n8k16, f16 in, f32 accumulate; lane = 4g + t, g = lane / 4, t = lane % 4):
//   S^T[16 tok x 8 head] = K[16 tok x 16 dim] · Q^T[16 dim x 8 head]     D/16 k-chunks per 16 tokens
//   O^T[16 dim x 8 head] += V^T[16 dim x 16 tok] · P^T[16 tok x 8 head]  D/16 m-tiles per 16 tokens
// A fragment (16x16): a0 = (row g, k 2t..2t+1), a1 = (row g+8, k 2t..), a2 = (row g, k 2t+8..),
// a3 = (row g+8, k 2t+8..), each a half2. The rotated coordinates may be visited in any fixed order
// (scores are dot products, V is accumulated and un-rotated once), so each lane decodes whole
// 8-code "selector words" and q / the output follow the order the lookups produce (kdim / vdim).
//
// Selector word s of a row: 8 nibbles, nibble m = the 4-bit prmt selector of code code_of(s, m)
// (bit 3 clear for b < 4). Built from group-plane words with 0 (b = 4), 2 (b = 1, 2) or ~3 (b = 3)
// integer ops; a prmt lookup of 4 nibbles gives 4 fp16 centroids as low / high byte words, and two
// more prmt interleave them into two half2 registers: ~1.4 integer ops per code at 3 bits.
#pragma once
#include <cstdint>

#include "turboquant/layout.h"

namespace tq::cuda::frag {

// PTX prmt.b32 (default mode): byte i of the result = byte (nibble i & 7) of {b, a}, or its sign
// replicated when nibble bit 3 is set; only the low 16 bits of s are used. (__byte_perm masks the
// nibbles with 7, which costs an extra instruction; the kernel never sets bit 3 on a lookup.)
TQ_HD uint32_t prmt(uint32_t a, uint32_t b, uint32_t s) {
#if defined(__CUDA_ARCH__)
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(s));
  return r;
#else
  const uint64_t x = (uint64_t(b) << 32) | a;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) {
    const uint32_t n = (s >> (4 * i)) & 0xFu;
    uint32_t byte = uint32_t(x >> (8 * (n & 7u))) & 0xFFu;
    if (n & 8u) byte = (byte & 0x80u) ? 0xFFu : 0u;
    r |= byte << (8 * i);
  }
  return r;
#endif
}

// Shifts as multiplications: x << k = x * 2^k (IMAD), x >> k = mulhi(x, 2^(32-k)) (IMAD.HI). IMAD
// runs on the FMA pipe, SHF / LOP3 / PRMT share the half-rate ALU pipe that the lookups saturate;
// the kernel passes these powers of two as run-time parameters so that the compiler cannot turn
// the products back into shifts (host code uses the defaults).
struct Shifts {
  uint32_t shl4 = 16u;
  uint32_t shr3 = 1u << 29, shr4 = 1u << 28, shr16 = 1u << 16;
  uint32_t shl1 = 2u, shl2 = 4u, shr1 = 1u << 31, shr2 = 1u << 30;  // sel_in_group_fma
};
TQ_HD uint32_t mulhi(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return uint32_t((uint64_t(a) * b) >> 32);
#endif
}

// Code index (coordinate within the part) of nibble m of selector word s.
TQ_HD constexpr int code_of(int bits, int s, int m) {
  const int group = s >> 2, i = s & 3;
  if (bits == 4) return 32 * group + 8 * i + m;  // 4-bit plane: word i holds codes 8i..8i+7
  // i = 2k + h: codes 16k + 2m + h (the 2-bit plane's words k, half h; the 1-bit plane's bit 4m + i
  // is the same code: layout.h's plane_pos)
  return 32 * group + 16 * (i >> 1) + 2 * m + (i & 1);
}
template <int BITS>
TQ_HD constexpr int code_of(int s, int m) { return code_of(BITS, s, m); }

// The 32-coordinate groups of a codec's packed codes (layout.h): single-part tqB has every group at
// B bits; fractional tqB.5 (2 parts, channel split of the codec spec) has part 0 = the first kHi
// groups at B + 1 bits (tq2.5: D/4 coordinates, tq1.5 / tq3.5: D/2), part 1 = the rest at B bits, packed
// one after the other. The kernel requires part dims that are multiples of 32 (checked at plan time).
// PROD: the mse codes of the fractional prod tq(B+1).5p (mse bits B + 1 and B; its split is that of
// the codec's rate B + 1: tq2.5p's B = 1 has the D/4 part 0 of tq2.5); its QJL signs follow (D bits).
template <int D, int B, bool FRAC, bool PROD = false>
struct Groups {
  static constexpr int kCount = D / 32;
  static constexpr int kHi = FRAC ? ((PROD ? B + 1 : B) == 2 ? D / 128 : D / 64) : 0;
  static constexpr int kParts = FRAC ? 2 : 1;
  TQ_HD static constexpr int bits(int q) { return q < kHi ? B + 1 : B; }
  TQ_HD static constexpr int part(int q) { return FRAC && q >= kHi ? 1 : 0; }
  TQ_HD static constexpr int word(int q) { return q < kHi ? q * (B + 1) : kHi * (B + 1) + (q - kHi) * B; }
  static constexpr int kCodesBytes = 4 * word(kCount);
};

// Rotate right (any amount mod 32): one funnel shift on the device, with a run-time amount too.
TQ_HD uint32_t rotr(uint32_t x, int n) {
#if defined(__CUDA_ARCH__)
  return __funnelshift_r(x, x, uint32_t(n));
#else
  n &= 31;
  return n ? (x >> n) | (x << (32 - n)) : x;
#endif
}

// Selector word s of one row whose packed codes are the 32-bit words `row` (group-plane layout).
// s may be a run-time value (V: it depends on the lane): the plane shifts are rotations, whose
// wrapped bits always land outside the masks, so no branch depends on s.
template <int BITS>
TQ_HD uint32_t sel_in_group(const uint32_t* gw, int i);
template <int BITS>
TQ_HD uint32_t sel_word(const uint32_t* row, int s) {
  return sel_in_group<BITS>(row + (s >> 2) * BITS, s & 3);
}
// sel_in_group for an i known at compile time (after unrolling), with the plane shifts as IMAD /
// IMAD.HI (FMA pipe) instead of funnel shifts (SHF, on the ALU pipe with the lookups' prmt and lop3).
// The masks keep no bit that the rotation would have wrapped around, so plain shifts give the same
// word: 2-bit plane h = 1: bits 4m+2..3 -> 4m..4m+1 (>> 2); 3-bit high plane: bit 4m+(2k+h) ->
// 4m+2, a shift by 2k+h-2 in -2..1.
// HI = false keeps the rotations of the 3-bit high plane (four shifted copies of one word cost
// registers that the quad-V PV does not have: 56 bytes of spills instead of 16).
template <int BITS, bool HI = true>
TQ_HD uint32_t sel_in_group_fma(const uint32_t* gw, int i, const Shifts& S) {
  if constexpr (BITS == 2 || BITS == 3) {
    const int k = i >> 1, h = i & 1;
    uint32_t w = (h ? mulhi(gw[k], S.shr2) : gw[k]) & 0x33333333u;
    if constexpr (BITS == 3) {
      const int r = 2 * k + h - 2;
      const uint32_t b = gw[2];
      if constexpr (HI) w |= (r == -2 ? b * S.shl2 : r == -1 ? b * S.shl1 : r == 0 ? b : mulhi(b, S.shr1)) & 0x44444444u;
      else w |= rotr(b, r) & 0x44444444u;
    }
    return w;
  } else {
    return sel_in_group<BITS>(gw, i);
  }
}
// K's selector word t * D/32 + w of a row (lane t, k32-chunk w): for D >= 128 it is word w % 4 of
// group t * D/128 + w / 4, an index fixed at compile time, so the shifts can be multiplications.
template <int D, int BITS>
TQ_HD uint32_t k_sel_word(const uint32_t* row, int t, int w, const Shifts& S) {
  if constexpr (D % 128 == 0) return sel_in_group_fma<BITS>(row + (t * (D / 128) + w / 4) * BITS, w & 3, S);
  else return sel_word<BITS>(row, t * (D / 32) + w);
}
// Selector word i (0..3) of the group whose BITS words start at gw.
template <int BITS>
TQ_HD uint32_t sel_in_group(const uint32_t* gw, int i) {
  if constexpr (BITS == 4) {
    return gw[i];
  } else if constexpr (BITS == 1) {
    return rotr(gw[0], i) & 0x11111111u;  // code 16(i>>1) + 2m + (i&1) at bit 4m + i
  } else {
    const int k = i >> 1, h = i & 1;
    uint32_t w = rotr(gw[k], 2 * h) & 0x33333333u;  // code 16k+2m+h at bits 4m+2h
    if constexpr (BITS == 3) w |= rotr(gw[2], 2 * k + h - 2) & 0x44444444u;  // bit 2 at 4m+2k+h -> 4m+2
    return w;
  }
}

// A selector word ready for lookups: 8 nibble indices (bit 3 clear) and, for 4 bits, the codes'
// bit 3 as nibble flags (codebook symmetry: c[15 - i] = -c[i], so code i >= 8 is entry (i ^ 7)
// negated and a table of 8 entries suffices).
struct Sel {
  uint32_t idx, neg;
};
template <int BITS>
TQ_HD Sel prep(uint32_t s, const Shifts& S) {
  if constexpr (BITS == 4) {
    const uint32_t b = mulhi(s, S.shr3) & 0x11111111u;
    return {(s ^ (b * 7u)) & 0x77777777u, b};
  } else {
    return {s, 0u};
  }
}
TQ_HD Sel upper(Sel x, const Shifts& S) { return {mulhi(x.idx, S.shr16), mulhi(x.neg, S.shr16)}; }

// 4 selectors (low 16 bits of x) -> two half2 of their fp16 table entries: r0 = (n0, n1),
// r1 = (n2, n3). tab = {lo0, lo1, -, -, hi0, hi1, -, -}: entry i's low byte is byte i%4 of lo[i/4].
template <int BITS>
TQ_HD void lookup_half2(const uint32_t* tab, Sel x, uint32_t& r0, uint32_t& r1) {
  const uint32_t lo = prmt(tab[0], tab[1], x.idx);
  uint32_t hi = prmt(tab[4], tab[5], x.idx);
  if constexpr (BITS == 4) hi ^= prmt(0x00008000u, 0u, x.neg);  // sign bit of negated entries
  r0 = prmt(lo, hi, 0x5140u);
  r1 = prmt(lo, hi, 0x7362u);
}

// V: interleave the selector words of two tokens A, B (same dims): e = 0 -> nibbles
// [A0 B0 A2 B2 A4 B4 A6 B6], e = 1 -> [A1 B1 A3 B3 A5 B5 A7 B7], so that one lookup yields
// half2(A, B) of one dim: the V^T fragment pairs two tokens of the same dim in a register.
TQ_HD uint32_t merge_sel(uint32_t a, uint32_t b, int e, const Shifts& S) {
  return e == 0 ? (a & 0x0F0F0F0Fu) | ((b * S.shl4) & 0xF0F0F0F0u) : (mulhi(a, S.shr4) & 0x0F0F0F0Fu) | (b & 0xF0F0F0F0u);
}

// merge_sel with a run-time e (the fractional V mapping: e depends on the lane): the rotations put
// the wanted nibbles of a in the low and of b in the high nibble of each byte; wrapped bits fall
// outside the masks.
TQ_HD uint32_t merge_sel_lane(uint32_t a, uint32_t b, int e) {
  return (rotr(a, 4 * e) & 0x0F0F0F0Fu) | (rotr(b, 4 * e - 4) & 0xF0F0F0F0u);
}

// merge_sel_lane(sel_in_group<BITS>(gwA, i), sel_in_group<BITS>(gwB, i), e) in fewer operations:
// rotations commute with the masks (multiples of 4 bits), so each plane word is rotated once by
// the sum of its plane shift and the merge shift and masked to its final nibble bits.
template <int BITS>
TQ_HD uint32_t merged_sel(const uint32_t* gwA, const uint32_t* gwB, int i, int e) {
  static_assert(BITS >= 1 && BITS <= 4, "fractional parts have 1..4 bits");
  if constexpr (BITS == 4) {
    return merge_sel_lane(gwA[i], gwB[i], e);
  } else if constexpr (BITS == 1) {  // tq1.5's part 1: the 1-bit plane word rotated by i (sel_in_group<1>)
    return (rotr(gwA[0], i + 4 * e) & 0x01010101u) | (rotr(gwB[0], i + 4 * e - 4) & 0x10101010u);
  } else {
    const int k = i >> 1, h = i & 1, r = 2 * h + 4 * e;
    uint32_t m = (rotr(gwA[k], r) & 0x03030303u) | (rotr(gwB[k], r - 4) & 0x30303030u);
    if constexpr (BITS == 3) {
      const int r2 = 2 * k + h - 2 + 4 * e;
      m |= (rotr(gwA[2], r2) & 0x04040404u) | (rotr(gwB[2], r2 - 4) & 0x40404040u);
    }
    return m;
  }
}

// ---- K as int8 (QK^T on mma.m16n8k32.s8) ------------------------------------------------------
// The K centroids become int8 (round(c * sqrt(D) * 127 / max|c * sqrt(D)|), table tab8 = 16 bytes,
// entry i = byte i % 4 of tab8[i / 4]) and q is rounded to int8 per row: one prmt turns 4 selector
// nibbles into 4 int8 codes, a quarter of the fp16 lookup's work, and the int8 mma does twice the
// k per instruction. 4 bits: entries 0-7 and 8-15 are looked up separately and picked per byte by
// a third prmt whose selector comes from the codes' bit 3.
template <int BITS>
TQ_HD uint32_t lookup_i8(const uint32_t* tab8, uint32_t s) {
  if constexpr (BITS == 4) {
    const uint32_t idx = s & 0x7777u;
    const uint32_t pick = ((s >> 1) & 0x4444u) | 0x3210u;  // byte j of lo, or of hi when bit 3 set
    return prmt(prmt(tab8[0], tab8[1], idx), prmt(tab8[2], tab8[3], idx), pick);
  } else {
    return prmt(tab8[0], tab8[1], s);
  }
}
// K fragments of k32-chunk kc for lane t: selector word t * D/32 + kc of the row; nibbles 0-3 are
// A-fragment k = 4t..4t+3, nibbles 4-7 are k = 16+4t..16+4t+3. q follows: kdim8(t, kc, j), j < 8.
template <int D, int BITS>
TQ_HD constexpr int kdim8(int t, int kc, int j) {
  return code_of<BITS>(t * (D / 32) + kc, j);
}
// Inverse of kdim8: the byte of coordinate d in a row of int8 q laid out in fragment order, byte
// 8 s + j = nibble j of selector word s (lane t's two registers of k32-chunk kc are bytes 8 s ..
// 8 s + 7, s = t * D/32 + kc: one contiguous run of D/4 bytes per lane).
template <int BITS>
TQ_HD constexpr int kpos8(int d) {
  const int group = d >> 5, r = d & 31;
  if (BITS == 4) return 8 * (4 * group + (r >> 3)) + (r & 7);
  return 8 * (4 * group + 2 * (r >> 4) + (r & 1)) + ((r & 15) >> 1);
}
// Fractional codecs (two parts, each scored with its own norm and scale, so no k32-chunk may mix
// them): k32-chunk kc is group kc, lane t takes selector word t of it (nibbles 0-3: k = 4t..4t+3,
// 4-7: k = 16+4t..). Used for 2-part codecs only (single-part keeps kdim8's bank-friendlier order).
template <int D, int B, bool PROD = false>
TQ_HD constexpr int kdim8_frac(int t, int kc, int j) {
  return 32 * kc + code_of(Groups<D, B, true, PROD>::bits(kc), t, j);
}
// int8 table of fp16-free centroids c_i * sqrt(D) (n entries, ascending): returns the scale s with
// entry_i * s ~= c_i * sqrt(D).
inline float make_table_i8(const double* c_sqrtd, int n, uint32_t tab8[4]) {
  double mx = 0;
  for (int i = 0; i < n; ++i) mx = c_sqrtd[i] < 0 ? (-c_sqrtd[i] > mx ? -c_sqrtd[i] : mx) : (c_sqrtd[i] > mx ? c_sqrtd[i] : mx);
  for (int i = 0; i < 4; ++i) tab8[i] = 0;
  if (mx == 0) return 0.f;
  for (int i = 0; i < n && i < 16; ++i) {
    const double r = c_sqrtd[i] * 127.0 / mx;
    const int v = int(r < 0 ? r - 0.5 : r + 0.5);
    tab8[i / 4] |= uint32_t(uint8_t(int8_t(v))) << (8 * (i % 4));
  }
  return float(mx / 127.0);
}

// ---- wide codecs tq5..tq8 (32..256 centroids): fp16 tables in shared memory --------------------
// A prmt table holds at most 8 entries, so these codebooks live in shared memory as fp16 c * sqrt(D)
// (a 16-bit load per code) and QK^T runs on the f16 mma like fp16 K (int8 centroids would undo the
// codebook's resolution). Each lane decodes runs of consecutive coordinates of a row. Within a group
// (layout.h), code c sits at nibble c % 8 of 4-bit plane word c / 8, at bits 2 (c % 16) of 2-bit
// plane word c / 16, at bit 4 ((c >> 1) & 7) + 2 (c >> 4) + (c & 1) of the 1-bit plane word, at
// byte c % 4 of byte-plane word c / 4 (8 bits); so shifting the 2-bit and 1-bit plane words right
// once, by the position of the run's first code c0, puts code c0 + j where code j would be, and every
// further shift is a compile-time constant after unrolling.
// The run [c0, c0 + n) of the codes of one group (gw: its BITS words); c0 % 8 == 0 and either c0 == 0
// (n <= 32) or the run stays inside one 16-code half (c0 % 16 + n <= 16).
template <int BITS>
struct WideRun {
  const uint32_t* lo;  // 4-bit plane words (8 bits: byte words) from the one holding code c0
  uint32_t w2a, w2b, w1;  // 2-bit plane words (codes j < 16, j >= 16) and 1-bit plane word, shifted
};
template <int BITS>
TQ_HD WideRun<BITS> wide_run(const uint32_t* gw, int c0) {
  static_assert(BITS >= 4 && BITS <= 8, "wide codecs: 5..8 bits (4: the 4-bit part of tq4.5)");
  WideRun<BITS> r{gw, 0u, 0u, 0u};
  if constexpr (BITS == 8) {
    r.lo = gw + (c0 >> 2);
  } else {
    r.lo = gw + (c0 >> 3);
    if constexpr (BITS == 6 || BITS == 7) {  // 2-bit plane: words 4, 5 (code c at bit 2 (c % 16))
      r.w2a = gw[4 + (c0 >> 4)] >> (2 * (c0 & 15));
      r.w2b = gw[5];
    }
    if constexpr (BITS == 5 || BITS == 7) r.w1 = gw[BITS - 1] >> (4 * ((c0 >> 1) & 7) + 2 * (c0 >> 4));
  }
  return r;
}
// x >> s, or x << -s for s < 0 (s is a compile-time constant after unrolling).
TQ_HD uint32_t shr_s(uint32_t x, int s) { return s >= 0 ? x >> s : x << -s; }
// Byte offset (2 x code) of code c0 + j of a run in a table of fp16 entries: each plane's field is
// shifted straight to its place in the offset (code bit i -> offset bit i + 1) and masked, so no
// code is assembled first (the kernel knows j at compile time).
template <int BITS>
TQ_HD uint32_t wide_off(const WideRun<BITS>& r, int j) {
  if constexpr (BITS == 8) {
    return shr_s(r.lo[j >> 2], 8 * (j & 3) - 1) & 0x1FEu;
  } else {
    uint32_t o = shr_s(r.lo[j >> 3], 4 * (j & 7) - 1) & 0x1Eu;
    if constexpr (BITS == 6 || BITS == 7) o |= shr_s((j >> 4) ? r.w2b : r.w2a, 2 * (j & 15) - 5) & 0x60u;
    if constexpr (BITS == 5 || BITS == 7) o |= shr_s(r.w1, 4 * ((j >> 1) & 7) + 2 * (j >> 4) + (j & 1) - BITS) & (1u << BITS);
    return o;
  }
}
template <int BITS>
TQ_HD uint32_t wide_code(const WideRun<BITS>& r, int j) { return wide_off(r, j) >> 1; }
// half2 of the fp16 table entries at byte offsets oa (low half) and ob (high half).
TQ_HD uint32_t wide_h2(const uint16_t* tab, uint32_t oa, uint32_t ob) {
  const char* b = reinterpret_cast<const char*>(tab);
  return uint32_t(*reinterpret_cast<const uint16_t*>(b + oa)) | uint32_t(*reinterpret_cast<const uint16_t*>(b + ob)) << 16;
}
// K: lane t owns coordinates [t D/4, (t+1) D/4) of its rows; k-chunk kc takes 4 consecutive ones:
// A slots 0, 1 (register a0 / a1) = local codes 4kc, 4kc + 1, slots 2, 3 (a2 / a3) = 4kc + 2, + 3.
// Run u (D = 256 has two groups per lane, u = kc / 8) and its local index 4 (kc % 8) + jj.
template <int D>
TQ_HD constexpr int kdim_wide(int t, int kc, int jj) { return t * (D / 4) + 4 * kc + jj; }
template <int D, int BITS>
TQ_HD WideRun<BITS> wide_k_run(const uint32_t* row, int t, int u) {
  const int c = t * (D / 4) + 32 * u;
  return wide_run<BITS>(row + (c >> 5) * BITS, c & 31);
}
// V: lane g owns coordinates [g D/8, (g+1) D/8) (one run); m-tile mt, row r (dim g / g + 8 of the
// tile) = local code 2 mt + r.
TQ_HD constexpr int vdim_wide_rt(int D, int g, int mt, int r) { return g * (D / 8) + 2 * mt + r; }  // run-time D
template <int D>
TQ_HD constexpr int vdim_wide(int g, int mt, int r) { return vdim_wide_rt(D, g, mt, r); }
template <int D, int BITS>
TQ_HD WideRun<BITS> wide_v_run(const uint32_t* row, int g) {
  const int c = g * (D / 8);
  return wide_run<BITS>(row + (c >> 5) * BITS, c & 31);
}
// The A fragment of K k-chunk kc from runs r0, r1 of rows g, g + 8 (run kc / 8 of wide_k_run):
// a0 / a1 = local codes j, j + 1 of row g / g + 8, a2 / a3 = codes j + 2, j + 3, j = 4 (kc % 8).
template <int BITS>
TQ_HD void wide_k_frag(const uint16_t* tab, const WideRun<BITS>& r0, const WideRun<BITS>& r1, int kc, uint32_t (&a)[4]) {
  const int j = 4 * (kc & 7);
  a[0] = wide_h2(tab, wide_off(r0, j), wide_off(r0, j + 1));
  a[1] = wide_h2(tab, wide_off(r1, j), wide_off(r1, j + 1));
  a[2] = wide_h2(tab, wide_off(r0, j + 2), wide_off(r0, j + 3));
  a[3] = wide_h2(tab, wide_off(r1, j + 2), wide_off(r1, j + 3));
}
// The V^T A fragment of m-tile mt from the runs (wide_v_run) of tokens 2t, 2t + 1 (ra, rb) and
// 2t + 8, 2t + 9 (rc, rd): a0 / a1 = dims of local codes 2mt / 2mt + 1 of tokens (2t, 2t + 1),
// a2 / a3 the same of tokens (2t + 8, 2t + 9).
template <int BITS>
TQ_HD void wide_v_frag(const uint16_t* tab, const WideRun<BITS>& ra, const WideRun<BITS>& rb, const WideRun<BITS>& rc,
                       const WideRun<BITS>& rd, int mt, uint32_t (&a)[4]) {
  const int j = 2 * mt;
  a[0] = wide_h2(tab, wide_off(ra, j), wide_off(rb, j));
  a[1] = wide_h2(tab, wide_off(ra, j + 1), wide_off(rb, j + 1));
  a[2] = wide_h2(tab, wide_off(rc, j), wide_off(rd, j));
  a[3] = wide_h2(tab, wide_off(rc, j + 1), wide_off(rd, j + 1));
}

// ---- fractional wide codecs tq4.5 .. tq7.5 (parts of D/2 at B + 1 and B bits, B = 4..7) ----------
// Both parts' codebooks are fp16 tables in shared memory, as the wide codecs' (a 4-bit part too:
// one path for both parts). Each part is scored and accumulated with its own norm, so no k16-chunk
// or m-tile may mix the parts.
// K: lane t owns a run of D/8 consecutive coordinates of each part (wide_k_run over the part's
// D/2 codes); k-chunks [p D/32, (p + 1) D/32) are part p, 4 codes of the run each (wide_k_frag
// with the chunk index inside the part).
template <int D>
TQ_HD constexpr int kdim_fwide(int t, int kc, int jj) {
  return (kc / (D / 32)) * (D / 2) + t * (D / 8) + 4 * (kc % (D / 32)) + jj;
}
// V: the fractional order vdim_frac (the segment epilogue scatters by it): in group q, lane g takes
// codes c_k = base + stride k, k = r + 2 hf (m-tile 2q + hf, row g + 8r) — code_of(bits, g / 2,
// (g & 1) + 2r + 4hf): 5..8 bits: base 16 (g >> 2) + ((g >> 1) & 1) + 2 (g & 1), stride 4; 4 bits:
// base 8 (g >> 1) + (g & 1), stride 2. Each plane word that holds them is shifted once, by a
// lane-dependent amount, so that code k sits at a compile-time position:
//   4 bits   : w[0] = 4-bit word g/2 >> 4 (g & 1): code k at nibble 2k
//   5..7 bits: w[0], w[1] = 4-bit words 2h, 2h + 1 >> 4b (h = g >> 2, b = base & 3): code k at
//              nibble 4 (k & 1) of w[k >> 1]; w[2] = 2-bit word h >> 2b: code k at bits 8k;
//              w[3] = 1-bit word >> 4 (b >> 1) + 2h + (b & 1): code k at bit 8k (layout.h plane_pos)
//   8 bits   : w[k] = byte word 4h + k >> 8b: code k at byte 0
template <int BITS>
struct FracRun {
  uint32_t w[4];
};
template <int BITS>
TQ_HD FracRun<BITS> frac_wide_run(const uint32_t* gw, int g) {
  static_assert(BITS >= 4 && BITS <= 8, "fractional wide parts: 4..8 bits");
  FracRun<BITS> r{{0u, 0u, 0u, 0u}};
  if constexpr (BITS == 4) {
    r.w[0] = gw[g >> 1] >> (4 * (g & 1));
  } else {
    const int h = g >> 2, b = ((g >> 1) & 1) + 2 * (g & 1);
    if constexpr (BITS == 8) {
#pragma unroll
      for (int k = 0; k < 4; ++k) r.w[k] = gw[4 * h + k] >> (8 * b);
    } else {
      r.w[0] = gw[2 * h] >> (4 * b);
      r.w[1] = gw[2 * h + 1] >> (4 * b);
      if constexpr (BITS == 6 || BITS == 7) r.w[2] = gw[4 + h] >> (2 * b);
      if constexpr (BITS == 5 || BITS == 7) r.w[3] = gw[BITS - 1] >> (4 * (b >> 1) + 2 * h + (b & 1));
    }
  }
  return r;
}
// Byte offset (2 x code) of the run's code k (k known at compile time) in a table of fp16 entries.
template <int BITS>
TQ_HD uint32_t frac_wide_off(const FracRun<BITS>& r, int k) {
  if constexpr (BITS == 4) {
    return shr_s(r.w[0], 8 * k - 1) & 0x1Eu;
  } else if constexpr (BITS == 8) {
    return (r.w[k] << 1) & 0x1FEu;
  } else {
    uint32_t o = shr_s(r.w[k >> 1], 16 * (k & 1) - 1) & 0x1Eu;
    if constexpr (BITS == 6 || BITS == 7) o |= shr_s(r.w[2], 8 * k - 5) & 0x60u;
    if constexpr (BITS == 5 || BITS == 7) o |= shr_s(r.w[3], 8 * k - BITS) & (1u << BITS);
    return o;
  }
}
// The V^T A fragment of m-tile 2q + hf from the runs of group q of tokens 2t, 2t + 1 (ra, rb) and
// 2t + 8, 2t + 9 (rc, rd): a0 / a1 = rows g / g + 8 (codes 2hf, 2hf + 1) of tokens (2t, 2t + 1),
// a2 / a3 the same of tokens (2t + 8, 2t + 9).
template <int BITS>
TQ_HD void frac_wide_v_frag(const uint16_t* tab, const FracRun<BITS>& ra, const FracRun<BITS>& rb, const FracRun<BITS>& rc,
                            const FracRun<BITS>& rd, int hf, uint32_t (&a)[4]) {
  const int k = 2 * hf;
  a[0] = wide_h2(tab, frac_wide_off(ra, k), frac_wide_off(rb, k));
  a[1] = wide_h2(tab, frac_wide_off(ra, k + 1), frac_wide_off(rb, k + 1));
  a[2] = wide_h2(tab, frac_wide_off(rc, k), frac_wide_off(rd, k));
  a[3] = wide_h2(tab, frac_wide_off(rc, k + 1), frac_wide_off(rd, k + 1));
}

// ---- coordinate orders -------------------------------------------------------------------------
// K (QK^T): lane t, k-chunk kc, slot jj (0, 1: k = 2t + jj; 2, 3: k = 2t + 8 + jj - 2).
//   TurboQuant: lane t owns selector words [t * D/32, (t+1) * D/32); chunk kc uses word kc/2, half
//   kc%2. fp16: lane t owns dims [t*D/4, (t+1)*D/4) read as 16-byte chunks, rotated by t/2 to keep
//   the four lanes of a row in distinct banks. Wide (5..8 bits): kdim_wide.
template <int D, int BITS>
TQ_HD constexpr int kdim(int t, int kc, int jj) {
  if (BITS == 0) {
    const int u = ((kc >> 1) + (t >> 1)) % (D / 32);
    return (D / 4) * t + 8 * u + 4 * (kc & 1) + jj;
  }
  if (BITS >= 5) return kdim_wide<D>(t, kc, jj);
  return code_of<BITS>(t * (D / 32) + (kc >> 1), 4 * (kc & 1) + jj);
}
// V (PV): lane g, m-tile mt, r = 0 (row g) / 1 (row g + 8).
//   TurboQuant: lane g owns selector words [g * D/64, (g+1) * D/64); m-tile mt = 4j + 2e + half uses
//   word j, merge e, 16-bit half `half`. fp16: the rows come from movmatrix of 16-byte loads made
//   by lane t' = g/2 (same chunk order as K), word 2(mt%2) + r, element g%2. Wide (5..8 bits): vdim_wide.
TQ_HD constexpr int vdim_tq(int D, int bits, int g, int mt, int r) {  // TurboQuant, run-time D and bits
  return code_of(bits, g * (D / 64) + (mt >> 2), 4 * (mt & 1) + ((mt >> 1) & 1) + 2 * r);
}
template <int D, int BITS>
TQ_HD constexpr int vdim(int g, int mt, int r) {
  if (BITS == 0) {
    const int tt = g >> 1;
    const int u = ((mt >> 1) + (tt >> 1)) % (D / 32);
    return (D / 4) * tt + 8 * u + 2 * (2 * (mt & 1) + r) + (g & 1);
  }
  if (BITS >= 5) return vdim_wide<D>(g, mt, r);
  return vdim_tq(D, BITS, g, mt, r);
}

// V of fractional codecs: the 16 rows of an m-tile must share a part (one V norm per token and
// part scales P^T), so an m-tile covers half a group: m-tile mt = 2q + hf of group q; lane g
// decodes selector word g/2 of the group, merged with e = g % 2 (lanes g and g^1 share a word and
// take its even / odd nibbles), 16-bit half hf.
template <int D, int B, bool PROD = false>
TQ_HD constexpr int vdim_frac(int g, int mt, int r) {
  const int q = mt >> 1, hf = mt & 1;
  return 32 * q + code_of(Groups<D, B, true, PROD>::bits(q), g >> 1, (g & 1) + 2 * r + 4 * hf);
}
// vdim_frac with run-time bits (the plan's fold matrix): hi = the groups of part 0.
TQ_HD constexpr int vdim_frac_rt(int hi, int bits, int g, int mt, int r) {
  const int q = mt >> 1, hf = mt & 1;
  return 32 * q + code_of(q < hi ? bits + 1 : bits, g >> 1, (g & 1) + 2 * r + 4 * hf);
}

// ---- TurboQuant-prod: the QJL signs (one bit per coordinate: layout.h's 1-bit plane) -----------
// Sign bit p of a group's word is coordinate qjl_code_at(p) of the group (inverse of plane_pos(1, .)).
TQ_HD constexpr int qjl_code_at(int p) { return 16 * ((p >> 1) & 1) + 2 * (p >> 2) + (p & 1); }

// K (second int8 mma m16n8k32 against q's sketch): k32-chunk kc = sign word kc of the row; lane t
// takes bits t + 8i (k = 4t + i) and t + 4 + 8i (k = 16 + 4t + i), i = 0..3, as int8 0 / 1: one
// shift and two ANDs give both A registers. The sketch follows: B slot j = 4r + i of register r is
// coordinate qjl_kdim(t, kc, j).
TQ_HD void qjl_a(uint32_t w, int t, uint32_t& lo, uint32_t& hi) {
  const uint32_t x = w >> t;
  lo = x & 0x01010101u;
  hi = (x >> 4) & 0x01010101u;
}
template <int D>
TQ_HD constexpr int qjl_kdim(int t, int kc, int j) {
  return 32 * kc + qjl_code_at(t + 4 * (j >> 2) + 8 * (j & 3));
}

// V (O2^T += Σ^T · (p n γ)^T on mma m16n8k16 f16, Σ = ±1): lane g owns bits [g·D/8, (g+1)·D/8) of
// each token's D sign bits (one word: qjl_vword), bit j = 2 mt + r for m-tile mt, row g + 8r. One
// prmt puts the lane's bits of tokens A and B in the low / high 16 bits of x (D >= 128: half h of
// the word, bit j at x bit j % 16, x index j / 16; D = 64: byte g % 4 at x bits 8..15), then each
// A register half2(σ_A, σ_B) = ±1.0 is one shift and one LOP3 (qjl_h2).
TQ_HD constexpr int qjl_vword(int D, int g) { return g * D / 256; }
TQ_HD constexpr uint32_t qjl_xsel(int D, int g, int h) {
  if (D == 64) {
    const uint32_t b = uint32_t(g & 3);
    return b | (b << 4) | ((4 + b) << 8) | ((4 + b) << 12);
  }
  const uint32_t b = uint32_t(2 * (D == 128 ? g & 1 : h));
  return b | ((b + 1) << 4) | ((b + 4) << 8) | ((b + 5) << 12);
}
TQ_HD constexpr int qjl_xbit(int D, int j) { return D == 64 ? 8 + j : j & 15; }
TQ_HD uint32_t qjl_h2(uint32_t x, int xbit) { return ((x << (15 - xbit)) & 0x80008000u) ^ 0xBC00BC00u; }
template <int D>
TQ_HD constexpr int qjl_vdim(int g, int mt, int r) {
  const int bit = g * (D / 8) + 2 * mt + r;
  return 32 * (bit >> 5) + qjl_code_at(bit & 31);
}
// The per-warp fold O += κ√D S^T O2 on tf32 mma m16n8k8: m-tile mt of O (rows: the V dims vdim),
// k-step ks = sketch coordinates [8 ks, 8 ks + 8) (O2 in shared memory). A fragment entry i of lane
// (g, t) is S[in][out] with out = the m-tile row's dim, in = 8 ks + t + 4 (i >> 1); the plan lays
// the matrix out in this order (float4 per lane per mma).
TQ_HD constexpr int qjl_fold_in(int ks, int t, int i) { return 8 * ks + t + 4 * (i >> 1); }

// Fractional prod tq(B+1).5p (two parts, each with its own QJL weight p n_p γ_p): the V sign
// m-tiles must not mix the parts, so m-tile mt = 2q + hf lies in group q (as vdim_frac): lane g takes
// nibble g of the group's sign word, bit 2 hf + r for row g + 8r. One prmt puts byte g/2 of tokens
// A and B in bytes 0 and 2 of x, one shift by 4 (g & 1) brings the nibble down (qjl_fxsel /
// qjl_fxshift), and bit k of each half is qjl_h2(x, k). K keeps qjl_kdim (k32-chunk = group).
TQ_HD constexpr uint32_t qjl_fxsel(int g) {
  const uint32_t b = uint32_t(g >> 1);
  return b | (b << 4) | ((4 + b) << 8) | ((4 + b) << 12);
}
TQ_HD constexpr int qjl_fxshift(int g) { return 4 * (g & 1); }
TQ_HD constexpr int qjl_vdim_frac(int g, int mt, int r) {
  return 32 * (mt >> 1) + qjl_code_at(4 * g + 2 * (mt & 1) + r);
}

// ---- V in token quads (layout.h's quad_pos; decode_v3 with QV = 1) -------------------------------
// PV on int8 tensor cores (mma.m16n8k32.s8.u8, k = 32 tokens of a block pair) wants 4 tokens of one
// dim per A register: lane (g, t) builds the selector words of its m-tiles from its groups
// lane + 32 j of each 16-token block like K's, and one prmt per 4 codes gives A register a0
// (nibbles 0-3: row g) or a1 (4-7: row g + 8); k = 4t + s is token 4t + s.
// The K rows each lane scores in the QV kernel: P^T reaches PV through movmatrix of (row, row + 8)
// u8 pairs, so lane t's four k slots are S^T rows 2t, 2t+8, 2t+1, 2t+9; row rho reads token
// quad_row_token(rho) so that those are tokens 4t..4t+3 (rows g and g + 8 read tokens 2g, 2g + 1).
TQ_HD constexpr int quad_row_token(int rho) {
  const int r = rho & 7;
  return 4 * (r >> 1) + 2 * (r & 1) + (rho >> 3);
}
// One 16-token block from its rows' codes (codes[tok * D + dim]) through layout.h's quad_put_token.
inline void pack_quad_block(const uint8_t* codes, int D, int bits, uint8_t* out) {
  for (int i = 0; i < 2 * D * bits; ++i) out[i] = 0;
  for (int tok = 0; tok < 16; ++tok) quad_put_token(codes + tok * D, uint32_t(D), bits, tok, out);
}

// fp16 table of a codebook (entries c_i * sqrt(dim), ascending), in the lookup_half2 format: the
// first 8 entries (a 16-entry codebook must be symmetric: h[15 - i] == h[i] ^ 0x8000).
TQ_HD void make_table(const uint16_t* h, int n, uint32_t tab[8]) {
  for (int i = 0; i < 8; ++i) tab[i] = 0;
  for (int i = 0; i < n && i < 8; ++i) {
    tab[i / 4] |= uint32_t(h[i] & 0xFFu) << (8 * (i % 4));
    tab[4 + i / 4] |= uint32_t(h[i] >> 8) << (8 * (i % 4));
  }
}

}  // namespace tq::cuda::frag
