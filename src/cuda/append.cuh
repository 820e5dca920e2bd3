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
//   pack    : group-plane words (layout.h), OR-reduced over the 32 / E lanes of a group; V in
//             token quads (QUAD, layout.quad_bits): the token's bits of its 16-token block (QuadWords)
// slot_mapping[token] = page * page_tokens + offset (negative: padding, skipped).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "cuda/append_params.h"
#include "cuda/append_quad.cuh"
#include "cuda/hadamard.cuh"
#include "turboquant/layout.h"

namespace tq::cuda::append {

template <int D, int BITS, bool QUAD = false>
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
      randomized_hadamard<D>(x, P.sign, lane);
      // ---- quantize: code = number of boundaries below ----
      uint32_t cs[E];
#pragma unroll
      for (int e = 0; e < E; ++e) {
        cs[e] = 0;
#pragma unroll
        for (int j = 0; j < (1 << BITS) - 1; ++j) cs[e] += x[e] > P.bound[j] ? 1u : 0u;
      }
      if constexpr (QUAD) {  // V in token quads: each code straight into its block's words
        uint32_t* block = reinterpret_cast<uint32_t*>(base + P.layout.codes_offset(head, off & ~15));
#pragma unroll
        for (int e = 0; e < E; ++e) {
          QuadWords<BITS> qw;
          quad_add<BITS>(qw, off & 15, lane * E + e, cs[e]);
          quad_flush<BITS>(block, qw);
        }
      } else {
        // ---- pack: this lane's codes into the BITS words of its group ----
        uint32_t w[BITS];
#pragma unroll
        for (int i = 0; i < BITS; ++i) w[i] = 0;
        constexpr Planes PL = planes(BITS);
#pragma unroll
        for (int e = 0; e < E; ++e) {
          const uint32_t c = cs[e];
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
      }
      if (lane == 0) {
        const float nf = float(norm);
        if (!(nf < 65504.f)) atomicOr(P.error_flag, 2);  // beyond fp16 norms (the CPU encoder throws)
        *reinterpret_cast<__half*>(base + P.layout.scalars_offset(head, off)) = __float2half_rn(nf);
      }
    }
  }
}

}  // namespace tq::cuda::append

namespace tq::cuda::append {

// ---------------------------------------------------------------------------------------------
// v2: tiled encoder for the TurboQuant codecs (bits 1..8), one kernel per input dtype DT
// (0 f32, 1 f16, 2 bf16) and per C, the coordinates each lane owns (32 or 64: C/32 code groups).
// Same bytes as v1 / TqCodec::encode; fewer instructions per vector.
//
// Block: kTileWarps warps, each encoding its own tile of P.vpw consecutive vectors
// (vector = token * Hkv + head; rows of x [n_tokens * Hkv, D] are contiguous, so a tile is one
// contiguous range of x).
//   stage   : the warp copies the tile into shared memory with coalesced 16-byte loads, xor-ing the
//             first Hadamard round's signs into the raw values (the norm is sign-blind, and
//             x·inv·s = (s·x)·inv exactly)
//   norm    : lane t sums the squares of row t in double in coordinate order (the CPU's order) and
//             writes the fp16 norm; inv = float(1 / norm) is handed to the encoding lanes by shuffle
//   encode  : passes of 32/L vectors, L = D/C lanes per vector, lane q owning coordinates
//             [Cq, Cq+C) = code groups [Gq, Gq+G), G = C/32. Butterfly stages h < C in registers;
//             the stages h = C..D/2 (log2 L of them) by shuffles: y ± x as fma(x, ±1, y), one
//             rounding = the CPU's __fadd_rn; each round ends with one multiply by s·(next round's
//             sign) from a shared table (s alone after the last round)
//   quantize: binary search over the boundaries (one compare per code bit, constant-bank operands;
//             5..8 bits: over the 2^B - 1 boundaries copied into shared memory, search_wide)
//   pack    : the lane's codes into its groups' BITS words in registers, 32-bit stores
// Shared memory: [2][L][C+4] float scale tables | [D·isz/16] uint4 sign masks | kTileWarps tiles
// of vpw rows (D·isz + 16 bytes each: the norm lanes' reads fall in distinct banks).
// A 16-byte shared-memory load the compiler may not hoist out of loops (the scale tables are loop
// invariant: hoisted, they would hold 64 registers for the whole kernel).
__device__ __forceinline__ float4 lds_f4(const float4* p) {
  float4 v;
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(p))));
  return v;
}

// Code bits of u by binary search over the ascending boundaries b (= the number of boundaries
// below u, Codebook::quantize): bit k compares with the boundary between the two halves left by
// the bits above it; the selects are between constant-bank operands.
template <int BITS>
__device__ __forceinline__ void search_bits(float u, const float (&b)[15], bool (&bit)[BITS]) {
  if constexpr (BITS == 1) {
    bit[0] = u > b[0];
  } else if constexpr (BITS == 2) {
    bit[1] = u > b[1];
    bit[0] = u > (bit[1] ? b[2] : b[0]);
  } else if constexpr (BITS == 3) {
    bit[2] = u > b[3];
    bit[1] = u > (bit[2] ? b[5] : b[1]);
    bit[0] = u > (bit[2] ? (bit[1] ? b[6] : b[4]) : (bit[1] ? b[2] : b[0]));
  } else {
    static_assert(BITS == 4, "1..4 bits");
    bit[3] = u > b[7];
    bit[2] = u > (bit[3] ? b[11] : b[3]);
    bit[1] = u > (bit[3] ? (bit[2] ? b[13] : b[9]) : (bit[2] ? b[5] : b[1]));
    const float lo = bit[2] ? (bit[1] ? b[6] : b[4]) : (bit[1] ? b[2] : b[0]);
    const float hi = bit[2] ? (bit[1] ? b[14] : b[12]) : (bit[1] ? b[10] : b[8]);
    bit[0] = u > (bit[3] ? hi : lo);
  }
}

// The wide codecs' boundaries: static shared memory of the wide kernels only.
template <int N>
__device__ __forceinline__ float* wide_bounds() {
  __shared__ float b[N];
  return b;
}

static_assert(kRounds == kHadamardRounds, "sign masks per Hadamard round");

// The slot of vector v = token * Hkv + head of an append (page * page_tokens + offset), or -1 when
// it is skipped: padding (slot < 0), or a slot beyond the pool (flagged: error bit 0).
template <class AP>
__device__ __forceinline__ int checked_token_slot(const AP& P, long long token) {
  const int slot = P.slot_mapping[token];
  if (slot >= P.num_pages * int(P.layout.page_tokens)) {
    atomicOr(P.error_flag, 1);
    return -1;
  }
  return slot;
}
template <class AP>
__device__ __forceinline__ int checked_slot(const AP& P, long long v, int& head) {
  head = int(v % P.Hkv);
  return checked_token_slot(P, v / P.Hkv);
}

// Adds the squares of the 4 (f32) or 8 (f16 / bf16) values of one staged 16-byte chunk to s, in
// order, in double (the CPU encoder's norm: products of floats are exact in double, fma = mul + add).
template <int DT>
__device__ __forceinline__ void add_squares(const uint4 q4, double& s) {
  const uint32_t w4[4] = {q4.x, q4.y, q4.z, q4.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if constexpr (DT == 0) {
      const double f = __uint_as_float(w4[j]);
      s = fma(f, f, s);
    } else {
      const float lo = DT == 1 ? __half2float(__ushort_as_half(uint16_t(w4[j]))) : __uint_as_float(w4[j] << 16);
      const float hi = DT == 1 ? __half2float(__ushort_as_half(uint16_t(w4[j] >> 16))) : __uint_as_float(w4[j] & 0xFFFF0000u);
      const double a = lo, b = hi;
      s = fma(a, a, s);
      s = fma(b, b, s);
    }
  }
}

// Chunk i of the rows to stage: contiguous rows from a pointer, or row(i / CH) + i % CH.
template <int CH>
__device__ __forceinline__ const uint4* chunk_at(const uint4* src, int i) { return src + i; }
template <int CH, class Row>
__device__ __forceinline__ const uint4* chunk_at(const Row& row, int i) { return row(i / CH) + i % CH; }

// Stages rows [0, nv) of x (CH 16-byte chunks each, contiguous from src, or src(r) for row r) into a
// warp's tile (row stride RS chunks): coalesced 16-byte streaming loads, 8 per lane in flight; chunk
// i is stored as xf(c, value), c = i % CH its column (the v2 kernel xors the first round's signs in,
// the fractional kernel stores as is).
template <int CH, int RS, class Src, class Xf>
__device__ __forceinline__ void stage_rows(Src src, int nv, uint4* tile, int lane, Xf xf) {
  const int nch = nv * CH;
  constexpr int U = 8;  // loads in flight per lane
  for (int base = 0; base < nch; base += 32 * U) {
    uint4 buf[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int i = base + 32 * u + lane;
      if (i < nch) buf[u] = __ldcs(chunk_at<CH>(src, i));
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int i = base + 32 * u + lane;
      if (i < nch) {
        const int c = i % CH;
        tile[(i / CH) * RS + c] = xf(c, buf[u]);
      }
    }
  }
}

template <int D, int C, int BITS, int DT, bool QUAD = false>
__global__ void __launch_bounds__(kTileWarps * 32) append_tile_kernel(const __grid_constant__ Params P) {
  constexpr int L = D / C;                  // lanes per vector
  constexpr int G = C / 32;                 // code groups per lane
  constexpr int VPP = 32 / L;               // vectors per pass
  constexpr int ISZ = DT == 0 ? 4 : 2;      // input bytes per coordinate
  constexpr int CH = D * ISZ / 16;          // 16-byte chunks per row
  constexpr int LCH = CH / L;               // chunks per lane (its C coordinates)
  constexpr int RS = tile_row_stride(D, ISZ) / 16;  // row stride in chunks
  constexpr int TW = C + 4;                 // table row (floats) per lane q: +4 keeps the q rows apart in banks
  static_assert(C == 32 || C == 64, "lanes own 1 or 2 code groups");
  static_assert(!QUAD || BITS <= 4, "token quads: 1..4 bits");
  constexpr bool WIDE = BITS >= 5;  // tq5..tq8: boundaries in shared memory
  extern __shared__ uint4 smem[];
  float* table = reinterpret_cast<float*>(smem);  // [2][L][TW]: s * sign of rounds 1, 2
  uint4* masks = smem + tile_table_bytes(D, C) / 16;  // [CH]: round-0 sign bits of each input chunk
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const float s = 1.0f / sqrtf(float(D));
  auto neg = [&](int r, int c) { return (P.sign[r][c >> 5] >> (c & 31)) & 1u; };
  for (int i = threadIdx.x; i < 2 * D; i += blockDim.x) {
    const int r = i / D, c = i % D;
    table[(r * L + c / C) * TW + c % C] = __uint_as_float(__float_as_uint(s) ^ (neg(r + 1, c) << 31));
  }
  for (int c = threadIdx.x; c < CH; c += blockDim.x) {
    uint32_t m[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if constexpr (DT == 0) m[j] = neg(0, 4 * c + j) << 31;
      else m[j] = (neg(0, 8 * c + 2 * j) << 15) | (neg(0, 8 * c + 2 * j + 1) << 31);
    }
    masks[c] = make_uint4(m[0], m[1], m[2], m[3]);
  }
  [[maybe_unused]] float* wbnd = nullptr;
  if constexpr (WIDE) {
    wbnd = wide_bounds<(1 << BITS) - 1>();
    for (int i = threadIdx.x; i < (1 << BITS) - 1; i += blockDim.x) wbnd[i] = P.wbound[i];
  }
  __syncthreads();
  // Warp w of W encodes vectors [total·w/W, total·(w+1)/W): equal shares, at most vpw (the plan
  // launches W >= total / vpw warps). QUAD: in quad order (quad_vector), whole quads per warp.
  const long long total = QUAD ? ((long long)P.n_tokens + 3) / 4 * 4 * P.Hkv : (long long)P.n_tokens * P.Hkv;
  const long long W = (long long)gridDim.x * kTileWarps, wid = (long long)blockIdx.x * kTileWarps + warp;
  const long long v0 = QUAD ? 4 * (total / 4 * wid / W) : total * wid / W;
  const long long vend = QUAD ? 4 * (total / 4 * (wid + 1) / W) : total * (wid + 1) / W;
  if (v0 >= vend) return;
  const int nv = int(min((long long)P.vpw, vend - v0));  // = vend - v0 (plan: W·vpw >= total)
  uint4* tile = masks + CH + warp * P.vpw * RS;
  // ---- stage: rows v0 .. v0+nv into the tile, round-0 signs xor-ed in ----
  const uint4* x4 = static_cast<const uint4*>(P.x);
  const auto sign0 = [&](int c, uint4 v) {
    const uint4 m = masks[c];
    return make_uint4(v.x ^ m.x, v.y ^ m.y, v.z ^ m.z, v.w ^ m.w);
  };
  if constexpr (QUAD) {
    stage_rows<CH, RS>([&](int r) {  // a padding token reads token 0's row (not encoded)
      long long token;
      int head;
      quad_vector(v0 + r, P.Hkv, token, head);
      return x4 + (token < P.n_tokens ? (size_t(token) * P.Hkv + head) * CH : 0);
    }, nv, tile, lane, sign0);
  } else {
    stage_rows<CH, RS>(x4 + size_t(v0) * CH, nv, tile, lane, sign0);
  }
  __syncwarp();

  // ---- norm of row `lane` (exact CPU order), fp16 norm written, destination handed out ----
  float inv = 1.0f;
  long long dst = -1;  // byte offset of the vector's codes (quad V: of its 16-token block) in the pool; -1: skip
  [[maybe_unused]] int qtok = 0;  // QUAD: the token's place in its block
  if (lane < nv) {
    int head, slot;
    if constexpr (QUAD) {
      long long token;
      quad_vector(v0 + lane, P.Hkv, token, head);
      slot = token < P.n_tokens ? checked_token_slot(P, token) : -1;
    } else {
      slot = checked_slot(P, v0 + lane, head);
    }
    if (slot >= 0) {
      const uint4* row = tile + lane * RS;
      double ss = 0.0;
#pragma unroll 4
      for (int c = 0; c < CH; ++c) add_squares<DT>(row[c], ss);
      const double norm = sqrt(ss);
      inv = norm > 0.0 ? float(1.0 / norm) : 1.0f;  // the CPU's x * 1.0f for the zero vector
      const int page = slot / int(P.layout.page_tokens), off = slot % int(P.layout.page_tokens);
      const size_t base = size_t(page) * P.layout.page_bytes();
      if constexpr (QUAD) qtok = off & 15;
      dst = (long long)(base + P.layout.codes_offset(head, QUAD ? off & ~15 : off));
      const float nf = float(norm);
      if (!(nf < 65504.f)) atomicOr(P.error_flag, 2);  // beyond fp16 norms (the CPU encoder throws)
      *reinterpret_cast<__half*>(P.pool + base + P.layout.scalars_offset(head, off)) = __float2half_rn(nf);
    }
  }

  // ---- encode: passes of VPP vectors, lane q of vector t owning coordinates [Cq, Cq+C) ----
  const int q = lane % L;
  float sgn[5];  // cross-lane stage m = 2^k: +1 for the lower lane, -1 for the upper
#pragma unroll
  for (int k = 0; k < 5; ++k) sgn[k] = (q >> k) & 1 ? -1.0f : 1.0f;
  const float4* tab = reinterpret_cast<const float4*>(table) + q * (TW / 4);
  for (int t0 = 0; t0 < nv; t0 += VPP) {
    const int t = t0 + lane / L;  // < 32 (vpw <= 32)
    const float vinv = __shfl_sync(0xffffffffu, inv, t);
    const long long vdst = __shfl_sync(0xffffffffu, dst, t);
    [[maybe_unused]] const int vtok = QUAD ? __shfl_sync(0xffffffffu, qtok, t) : 0;
    const uint4* row = tile + min(t, nv - 1) * RS + q * LCH;  // lanes past the tile redo its last row
    float x[C];
#pragma unroll
    for (int c = 0; c < LCH; ++c) {
      const uint4 q4 = row[c];
      const uint32_t w4[4] = {q4.x, q4.y, q4.z, q4.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        if constexpr (DT == 0) {
          x[4 * c + j] = __uint_as_float(w4[j]);
        } else if constexpr (DT == 1) {
          x[8 * c + 2 * j] = __half2float(__ushort_as_half(uint16_t(w4[j])));
          x[8 * c + 2 * j + 1] = __half2float(__ushort_as_half(uint16_t(w4[j] >> 16)));
        } else {
          x[8 * c + 2 * j] = __uint_as_float(w4[j] << 16);
          x[8 * c + 2 * j + 1] = __uint_as_float(w4[j] & 0xFFFF0000u);
        }
      }
    }
#pragma unroll
    for (int e = 0; e < C; ++e) x[e] = __fmul_rn(x[e], vinv);
#pragma unroll
    for (int r = 0; r < kRounds; ++r) {
#pragma unroll
      for (int h = 1; h < C; h <<= 1)
#pragma unroll
        for (int e = 0; e < C; ++e)
          if (!(e & h)) {
            const float a = x[e], b = x[e + h];
            x[e] = __fadd_rn(a, b);
            x[e + h] = __fsub_rn(a, b);
          }
#pragma unroll
      for (int k = 0; (1 << k) < L; ++k)
#pragma unroll
        for (int e = 0; e < C; ++e) {
          const float y = __shfl_xor_sync(0xffffffffu, x[e], 1 << k);
          x[e] = __fmaf_rn(x[e], sgn[k], y);  // lower: x + y, upper: y - x (x·±1 exact)
        }
      if (r + 1 < kRounds) {
#pragma unroll
        for (int c = 0; c < C / 4; ++c) {
          const float4 m = lds_f4(tab + r * L * (TW / 4) + c);
          x[4 * c] = __fmul_rn(x[4 * c], m.x);
          x[4 * c + 1] = __fmul_rn(x[4 * c + 1], m.y);
          x[4 * c + 2] = __fmul_rn(x[4 * c + 2], m.z);
          x[4 * c + 3] = __fmul_rn(x[4 * c + 3], m.w);
        }
      } else {
#pragma unroll
        for (int e = 0; e < C; ++e) x[e] = __fmul_rn(x[e], s);
      }
    }
    // ---- quantize (binary search) + pack, group by group ----
    constexpr Planes PL = planes(BITS);
    if constexpr (QUAD) {  // V in token quads (LaneQuad): whole quads by plain stores, others by atomics
      static_assert(C == 32, "the quad pack is written for 32 coordinates per lane");
      using LQ = LaneQuad<BITS>;
      const int p = q & 1, j = q >> 1, s = vtok & 3;
      uint32_t w[8][LQ::NW], m[8][LQ::NW];  // per group g = e & 7: this lane's words and their masks
#pragma unroll
      for (int g = 0; g < 8; ++g)
#pragma unroll
        for (int l = 0; l < LQ::NW; ++l) w[g][l] = m[g][l] = 0;
#pragma unroll
      for (int e = 0; e < 32; ++e) {
        bool bit[BITS];
        search_bits<BITS>(x[e], P.bound, bit);
        uint32_t c = 0;
#pragma unroll
        for (int i = 0; i < BITS; ++i) c |= uint32_t(bit[i]) << i;
        LQ::add(w[e & 7], e, c);
        LQ::add(m[e & 7], e, (1u << BITS) - 1u);
      }
      // Whole quad: the pass's 4 vectors of this quad (lanes b0 + i·L + q, i = 0..3) are tokens
      // 4u .. 4u + 3 of one block: together they own every bit of the words they touch.
      const int i = (lane / L) & 3, b0 = lane & ~(4 * L - 1);
      const long long d0 = __shfl_sync(0xffffffffu, vdst, b0 + q);
      const int tok0 = __shfl_sync(0xffffffffu, vtok, b0 + q);
      const bool ok = t < nv && vdst >= 0 && vdst == d0 && vtok == tok0 + i && (tok0 & 3) == 0;
      const uint32_t pat = 1u | 1u << L | 1u << (2 * L) | 1u << (3 * L);
      const bool whole = ((__ballot_sync(0xffffffffu, ok) >> b0) & pat) == pat;
      uint32_t* gw = reinterpret_cast<uint32_t*>(P.pool + (vdst >= 0 ? vdst : 0)) + BITS * ((vtok >> 2) + 32 * j);
      if (whole) {  // OR over the quad's tokens (and the lane pair for shared words), plain stores:
        // token i's lanes store groups 2i, 2i + 1, shared words from p = 0. The quad's lanes agree.
        const uint32_t qmask = (4 * L == 32 ? 0xffffffffu : (1u << (4 * L)) - 1u) << b0;
#pragma unroll
        for (int g = 0; g < 8; ++g)
#pragma unroll
          for (int l = 0; l < LQ::NW; ++l) {
            uint32_t all = w[g][l] << LQ::shift(l, s, p);
            all |= __shfl_xor_sync(qmask, all, L);
            all |= __shfl_xor_sync(qmask, all, 2 * L);
            if (LQ::shared(l)) all |= __shfl_xor_sync(qmask, all, 1);
            if ((g >> 1) == i && (!LQ::shared(l) || p == 0)) gw[BITS * 4 * g + LQ::word(l, p)] = all;
          }
      } else if (vdst >= 0 && t < nv) {  // this token's bits only
#pragma unroll
        for (int g = 0; g < 8; ++g)
#pragma unroll
          for (int l = 0; l < LQ::NW; ++l) {
            const int sh = LQ::shift(l, s, p);
            uint32_t* a = gw + BITS * 4 * g + LQ::word(l, p);
            atomicAnd(a, ~(m[g][l] << sh));
            if (w[g][l]) atomicOr(a, w[g][l] << sh);
          }
      }
    } else {  // rows
#pragma unroll
      for (int g = 0; g < G; ++g) {
        uint32_t w[BITS];
#pragma unroll
        for (int i = 0; i < BITS; ++i) w[i] = 0;
#pragma unroll
        for (int e = 0; e < 32; ++e) {
          if constexpr (WIDE) {
            pack_code<BITS>(w, e, search_wide<BITS>(x[32 * g + e], wbnd));
          } else {
            bool bit[BITS];
            search_bits<BITS>(x[32 * g + e], P.bound, bit);
            int wb = 0, bo = 0;
#pragma unroll
            for (int p = 0; p < PL.n; ++p) {
              int word = 0;
              const int sh = plane_pos(PL.w[p], e, &word);
#pragma unroll
              for (int i = 0; i < PL.w[p]; ++i)
                if (bit[bo + i]) w[wb + word] |= 1u << (sh + i);
              wb += PL.w[p];
              bo += PL.w[p];
            }
          }
        }
        if (vdst >= 0 && t < nv) {
          uint32_t* gw = reinterpret_cast<uint32_t*>(P.pool + vdst) + (q * G + g) * BITS;
#pragma unroll
          for (int i = 0; i < BITS; ++i) gw[i] = w[i];
        }
      }
    }
  }
}

}  // namespace tq::cuda::append
