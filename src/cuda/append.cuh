// src/cuda/append.cuh — append / encode kernel: K or V vectors of new tokens -> TurboQuant codes
// and norms (or fp16 values) in the paged layout of layout.h, bit-identical to TqCodec::encode.
//
// One warp per P.vpw consecutive (token, KV head) vectors (1..32, from the plan: one per lane for
// large appends, one per warp for a decode step's few tokens).
//   norm    : sum of squares in double, in coordinate order, one vector per lane (the CPU encoder's
//             order: the products of floats are exact in double, so fma = mul + add, same rounding)
//   then per vector, lane l owning coordinates [l*E, l*E + E), E = D / 32:
//   rotate  : u = x * float(1 / norm), then the randomized Hadamard transform (3 rounds) in fp32
//             with the CPU's butterfly order (warp_fwht), no contraction into FMAs
//   quantize: code = number of float boundaries below u (= Codebook::quantize, ties to the lower)
//   pack    : group-plane words (layout.h), OR-reduced over the 32 / E lanes of a group
// slot_mapping[token] = page * page_tokens + offset (negative: padding, skipped).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "cuda/append_params.h"
#include "cuda/hadamard.cuh"
#include "turboquant/layout.h"

namespace tq::cuda::append {

struct Planes {
  int n, w[3];
};
constexpr Planes planes(int bits) {
  Planes p{0, {0, 0, 0}};
  p.n = plane_widths(bits, p.w);
  return p;
}

template <int D, int BITS>
__global__ void __launch_bounds__(kThreads) append_kernel(const __grid_constant__ Params P) {
  constexpr int E = D / 32;
  constexpr int LPG = 32 / E;  // lanes per 32-code group
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long total = (long long)P.n_tokens * P.Hkv;  // vector = token * Hkv + head
  const long long v0 = ((long long)blockIdx.x * (kThreads / 32) + warp) * P.vpw;
  if (v0 >= total) return;
  const int nv = int(min((long long)P.vpw, total - v0));

  // ---- norms: lane l sums the squares of vector v0 + l in double, in coordinate order (the CPU
  // encoder's order, so the rounding is the same; the products of floats are exact in double) ----
  double norm_l = 0.0;
  if constexpr (BITS != 0) {
    if (lane < nv && P.slot_mapping[(v0 + lane) / P.Hkv] >= 0) {
      double ss = 0.0;
      const size_t r = size_t(v0 + lane) * D;
      if (P.in_dtype == 0) {
        const float4* row = reinterpret_cast<const float4*>(static_cast<const float*>(P.x) + r);
        for (int j = 0; j < D / 4; ++j) {
          const float4 q = row[j];
          ss = fma(double(q.x), double(q.x), ss);
          ss = fma(double(q.y), double(q.y), ss);
          ss = fma(double(q.z), double(q.z), ss);
          ss = fma(double(q.w), double(q.w), ss);
        }
      } else {
        const uint4* row = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(P.x) + r);
        for (int j = 0; j < D / 8; ++j) {
          const uint4 q = row[j];
          const uint32_t w4[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
          for (int k = 0; k < 8; ++k) {
            const uint32_t hbits = (w4[k >> 1] >> (16 * (k & 1))) & 0xFFFFu;
            const float f = P.in_dtype == 1 ? __half2float(__ushort_as_half(uint16_t(hbits))) : __uint_as_float(hbits << 16);
            ss = fma(double(f), double(f), ss);
          }
        }
      }
      norm_l = sqrt(ss);
    }
  }

  for (int iv = 0; iv < nv; ++iv) {
    const long long v = v0 + iv;
    const double norm = __shfl_sync(0xffffffffu, norm_l, iv);
    const int token = int(v / P.Hkv), head = int(v % P.Hkv);
    const int slot = P.slot_mapping[token];
    if (slot < 0) continue;  // padding
    if (slot >= P.num_pages * int(P.layout.page_tokens)) {
      if (lane == 0) atomicOr(P.error_flag, 1);
      continue;
    }
    const int page = slot / int(P.layout.page_tokens), off = slot % int(P.layout.page_tokens);
    uint8_t* base = P.pool + size_t(page) * P.layout.page_bytes();
    uint8_t* codes = base + P.layout.codes_offset(head, off);

    float x[E];
    const size_t row = size_t(v) * D + size_t(lane) * E;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      if (P.in_dtype == 0) x[e] = static_cast<const float*>(P.x)[row + e];
      else if (P.in_dtype == 1) x[e] = __half2float(static_cast<const __half*>(P.x)[row + e]);
      else x[e] = __bfloat162float(static_cast<const __nv_bfloat16*>(P.x)[row + e]);
    }
    if constexpr (BITS == 0) {  // fp16 pass-through
#pragma unroll
      for (int e = 0; e < E; ++e) reinterpret_cast<__half*>(codes)[lane * E + e] = __float2half_rn(x[e]);
      continue;
    } else {
      if (norm > 0.0) {
        const float inv = float(1.0 / norm);
#pragma unroll
        for (int e = 0; e < E; ++e) x[e] = __fmul_rn(x[e], inv);
      }
      // ---- rotation (exactly the CPU's float operations: hadamard.cuh) ----
#pragma unroll
      for (int r = 0; r < kRounds; ++r) {
        apply_signs<D>(x, lane_signs<D>(P.sign[r], lane));
        warp_fwht<D>(x, lane);
      }
      // ---- quantize + pack: this lane's codes into the BITS words of its group ----
      uint32_t w[BITS];
#pragma unroll
      for (int i = 0; i < BITS; ++i) w[i] = 0;
      constexpr Planes PL = planes(BITS);
#pragma unroll
      for (int e = 0; e < E; ++e) {
        uint32_t c = 0;
#pragma unroll
        for (int j = 0; j < (1 << BITS) - 1; ++j) c += x[e] > P.bound[j] ? 1u : 0u;
        const int pos = (lane % LPG) * E + e;  // position in the group
        int wb = 0, bo = 0;
#pragma unroll
        for (int p = 0; p < PL.n; ++p) {
          int word = 0;
          const int sh = plane_pos(PL.w[p], pos, &word);
#pragma unroll
          for (int i = 0; i < BITS; ++i)
            if (i == wb + word) w[i] |= ((c >> bo) & ((1u << PL.w[p]) - 1u)) << sh;
          wb += PL.w[p];
          bo += PL.w[p];
        }
      }
#pragma unroll
      for (int m = 1; m < LPG; m <<= 1)
#pragma unroll
        for (int i = 0; i < BITS; ++i) w[i] |= __shfl_xor_sync(0xffffffffu, w[i], m);
      const int group = lane / LPG, first = lane % LPG;
      uint32_t* gw = reinterpret_cast<uint32_t*>(codes) + group * BITS;
#pragma unroll
      for (int i = 0; i < BITS; ++i)
        if (first == i) gw[i] = w[i];
      if (lane == 0) {
        const float nf = float(norm);
        if (!(nf < 65504.f)) atomicOr(P.error_flag, 2);  // beyond fp16 norms (the CPU encoder throws)
        *reinterpret_cast<__half*>(base + P.layout.scalars_offset(head, off)) = __float2half_rn(nf);
      }
    }
  }
}

}  // namespace tq::cuda::append
