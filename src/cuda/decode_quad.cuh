// src/cuda/decode_quad.cuh — the quad-V pieces of the v3 decode kernel (decode_v3.cuh, QV = 1;
// DecodeShape::v_quads): V pages in token quads (layout.h quad_pos), PV on int8 tensor
// cores (mma.m16n8k32.s8.u8, k = the 32 tokens of a block pair).
#pragma once
#include <cstdint>

#include "cuda/decode_frag.h"
#include "cuda/decode_ptx.cuh"

namespace tq::cuda::v3::quad {

// P^T of `nblk` blocks (1 or 2) as u8: w = p·n_v of this lane's S^T rows (r, r + 8) and heads
// (2t, 2t+1) rounded to 255 levels of its head's max over the blocks; the bytes of rows (r, r + 8)
// of a head paired in a b16 so that movmatrix hands lane t the k slots of tokens 4t..4t+3
// (frag::quad_row_token). f0 / f1 dequantize heads 2t, 2t+1 (vdeq: the int8 V table's scale).
__device__ __forceinline__ void p_transposed(const float (&w)[2][4], int nblk, float vdeq, uint32_t (&bq)[2], float& f0,
                                             float& f1) {
  float wm0 = 0.f, wm1 = 0.f;
  for (int k = 0; k < nblk; ++k) {
    wm0 = fmaxf(wm0, fmaxf(w[k][0], w[k][2]));
    wm1 = fmaxf(wm1, fmaxf(w[k][1], w[k][3]));
  }
#pragma unroll
  for (int off = 4; off < 32; off <<= 1) {
    wm0 = fmaxf(wm0, __shfl_xor_sync(0xffffffffu, wm0, off));
    wm1 = fmaxf(wm1, __shfl_xor_sync(0xffffffffu, wm1, off));
  }
  // MUFU.RCP and one FMUL (__fdividef), not an IEEE division (a Newton step and a slow path per
  // head): a scale a few ulp off moves nothing, since f0 / f1 below dequantize with the same wm.
  const float s0 = wm0 > 0.f ? __fdividef(255.f, wm0) : 0.f, s1 = wm1 > 0.f ? __fdividef(255.f, wm1) : 0.f;
  bq[1] = 0u;
  for (int k = 0; k < nblk; ++k) {  // w * s + 1.5 * 2^23: the rounded integer in the low byte
    const uint32_t u0 = __float_as_uint(fmaf(w[k][0], s0, 12582912.f)), u1 = __float_as_uint(fmaf(w[k][1], s1, 12582912.f));
    const uint32_t u2 = __float_as_uint(fmaf(w[k][2], s0, 12582912.f)), u3 = __float_as_uint(fmaf(w[k][3], s1, 12582912.f));
    bq[k] = movm(frag::prmt(frag::prmt(u0, u2, 0x0040u), frag::prmt(u1, u3, 0x0040u), 0x5410u));
  }
  const float d = vdeq * (1.f / 255.f);
  f0 = wm0 * d;
  f1 = wm1 * d;
}

// O^T += V^T · P^T over a block pair: vA / vB = the V codes of the pair's stages (A: k 0..15,
// B: k 16..31; a single block passes vB = vA with b1 = 0), lane (g, t) = 4g + t of warp `warp`;
// one int32 accumulator set per m-tile, converted with the pair's scales f0 / f1.
template <int D, int VB, int VCB>
__device__ __forceinline__ void pv(const uint8_t* vA, const uint8_t* vB, uint32_t b0, uint32_t b1, float f0, float f1,
                                   const uint32_t (&vtab8)[4], const frag::Shifts& S, float (&o)[D / 16][4], int warp,
                                   int lane) {
  const uint32_t* gA = reinterpret_cast<const uint32_t*>(vA + 16 * warp * VCB) + VB * lane;
  const uint32_t* gB = reinterpret_cast<const uint32_t*>(vB + 16 * warp * VCB) + VB * lane;
#pragma unroll
  for (int mt = 0; mt < D / 16; ++mt) {
    const uint32_t sa = frag::sel_in_group_fma<VB, false>(gA + 32 * VB * (mt >> 2), mt & 3, S);
    const uint32_t sb = frag::sel_in_group_fma<VB, false>(gB + 32 * VB * (mt >> 2), mt & 3, S);
    // The accumulators start at 1.5 * 2^23 (as int): |sum| <= 32 * 255 * 127 < 2^22 keeps the
    // result an exact float of that binade, so an FADD (FMA pipe) replaces I2FP (ALU pipe, the
    // busiest): -2% at B = 32, T = 128K (H200).
    constexpr int kM = 0x4B400000;
    int acc[4] = {kM, kM, kM, kM};
    mma_s8<true>(acc, frag::lookup_i8<VB>(vtab8, sa), frag::lookup_i8<VB>(vtab8, frag::mulhi(sa, S.shr16)),
                 frag::lookup_i8<VB>(vtab8, sb), frag::lookup_i8<VB>(vtab8, frag::mulhi(sb, S.shr16)), b0, b1);
    o[mt][0] = fmaf(__int_as_float(acc[0]) - 12582912.f, f0, o[mt][0]);
    o[mt][1] = fmaf(__int_as_float(acc[1]) - 12582912.f, f1, o[mt][1]);
    o[mt][2] = fmaf(__int_as_float(acc[2]) - 12582912.f, f0, o[mt][2]);
    o[mt][3] = fmaf(__int_as_float(acc[3]) - 12582912.f, f1, o[mt][3]);
  }
}

}  // namespace tq::cuda::v3::quad
