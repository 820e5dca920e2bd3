// src/cuda/append_frac.cuh — append kernel for the fractional TurboQuant codecs tq1.5 .. tq7.5: two
// parts per vector, codes and norms bit-identical to TqCodec::encode (uncalibrated: part 0 =
// channels [0, hi) at bits + 1, part 1 = [hi, D) at bits; append_params.h).
//
// Per part p (dimension m_p), the CPU batched encoder (tq_codec.cpp encode_rows) computes
//   n_p = sqrt(sum of x_j^2 in double, j ascending), u = x_p * float(1 / n_p) (fp32)
//   Hadamard part: 3 rounds of signs, butterflies h = 1..m/2, one multiply by 1/sqrt(m) (rotation.cpp)
//   dense part   : y_i = fma chain over j = 0..m-1 from 0 (acc = fma(u_j, M_ij, acc)), fp32
//   code = number of float boundaries below y (Codebook::quantize; parts of 5..8 bits: binary
//          search over their 2^b - 1 boundaries in shared memory, search_wide)
// and the kernel repeats these float operations in the same order.
//
// Block: kTileWarps warps, warp w encoding vectors [w·vpw, w·vpw + vpw) (vector = token·Hkv + head;
// rows of x contiguous, so a tile is one contiguous range of x):
//   stage  : the tile into shared memory, coalesced 16-byte loads (as v2, without the signs)
//   norms  : lane t sums both parts of row t (two chains, each in coordinate order), writes the two
//            fp16 norms; 1/n_p and the destination are handed out by shuffles
//   Hadamard parts: one vector at a time, lane l owning coordinates [l·E, l·E + E), E = m/32
//            (hadamard.cuh, as v1); codes OR-reduced into the group words with redux.sync
//   dense part (tq2.5): passes of VD vectors (dense_pass); the pass's u in shared memory as
//            [m1][VD], lane l owning outputs l + 32k of each vector (VD·m1/32 chains, coalesced
//            matrix loads from global / L1), then code group k = output lanes' codes, one word per
//            redux.sync
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <type_traits>

#include "cuda/append.cuh"

namespace tq::cuda::append {

// Element j of a staged row (DT: 0 f32, 1 f16, 2 bf16).
template <int DT>
__device__ __forceinline__ float row_elem(const uint4* row, int j) {
  if constexpr (DT == 0) return reinterpret_cast<const float*>(row)[j];
  const uint16_t h = reinterpret_cast<const uint16_t*>(row)[j];
  return DT == 1 ? __half2float(__ushort_as_half(h)) : __uint_as_float(uint32_t(h) << 16);
}

// E consecutive elements [first, first + E) of a staged row; first·size is a multiple of E·size.
template <int DT, int E>
__device__ __forceinline__ void row_elems(const uint4* row, int first, float (&x)[E]) {
  constexpr int NB = E * (DT == 0 ? 4 : 2);  // bytes
  constexpr int NW = NB < 4 ? 1 : NB / 4;    // 32-bit words
  uint32_t w[NW];
  const uint8_t* p = reinterpret_cast<const uint8_t*>(row) + first * (DT == 0 ? 4 : 2);
  if constexpr (NB >= 16) {
#pragma unroll
    for (int c = 0; c < NB / 16; ++c) {
      const uint4 q = reinterpret_cast<const uint4*>(p)[c];
      w[4 * c] = q.x; w[4 * c + 1] = q.y; w[4 * c + 2] = q.z; w[4 * c + 3] = q.w;
    }
  } else if constexpr (NB == 8) {
    const uint2 q = *reinterpret_cast<const uint2*>(p);
    w[0] = q.x; w[1] = q.y;
  } else if constexpr (NB == 4) {
    w[0] = *reinterpret_cast<const uint32_t*>(p);
  } else {
    w[0] = *reinterpret_cast<const uint16_t*>(p);
  }
#pragma unroll
  for (int e = 0; e < E; ++e) {
    if constexpr (DT == 0) {
      x[e] = __uint_as_float(w[e]);
    } else {
      const uint32_t h = (w[e / 2] >> (16 * (e & 1))) & 0xFFFFu;
      x[e] = DT == 1 ? __half2float(__ushort_as_half(uint16_t(h))) : __uint_as_float(h << 16);
    }
  }
}

// Adds code c of position pos (0..31, a runtime value) of a group to the group's B words
// (layout.h planes). Word indices stay compile-time (selects), so w stays in registers.
template <int B>
__device__ __forceinline__ void put_code(uint32_t (&w)[B], uint32_t c, int pos) {
  constexpr Planes PL = planes(B);
  int wb = 0;
#pragma unroll
  for (int p = 0; p < PL.n; ++p) {
    int word = 0;
    const int sh = plane_pos(PL.w[p], pos, &word);
    const uint32_t f = ((c >> wb) & ((1u << PL.w[p]) - 1u)) << sh;  // plane p's bits start at bit wb
#pragma unroll
    for (int k = 0; k < PL.w[p]; ++k) w[wb + k] |= word == k ? f : 0u;  // a plane of width w has w words
    wb += PL.w[p];
  }
}

template <int B>
__device__ __forceinline__ uint32_t code_of(float u, const float (&bound)[15]) {
  bool bit[B];
  search_bits<B>(u, bound, bit);
  uint32_t c = 0;
#pragma unroll
  for (int k = 0; k < B; ++k) c |= uint32_t(bit[k]) << k;
  return c;
}

// Lane l's E = M/32 coordinates of a Hadamard part (dimension M) of one staged row, normalized
// (x·inv) and rotated (hadamard.cuh: the CPU's float operations). Whole warp.
template <int M, int DT>
__device__ __forceinline__ void rotate_part(const uint4* row, int first, float inv, const uint32_t (&sign)[kRounds][8],
                                            float (&x)[M / 32], int lane) {
  row_elems<DT, M / 32>(row, first + lane * (M / 32), x);
#pragma unroll
  for (int e = 0; e < M / 32; ++e) x[e] = __fmul_rn(x[e], inv);
  randomized_hadamard<M>(x, sign, lane);
}

// Packs lane l's codes c (coordinates [l·E, l·E + E) of a part of dimension M, B bits) into the
// M/32 groups (B words each) and stores them at out. Whole warp. Word w is stored by lane w % 32:
// M·B/32 words can exceed 32 (D = 256 at 5..7 bits: 40..56 words).
template <int M, int B>
__device__ __forceinline__ void store_part_codes(const uint32_t (&c)[M / 32], uint32_t* out, int lane) {
  constexpr int E = M / 32, LPG = 32 / E, G = M / 32;
  uint32_t w[B];
#pragma unroll
  for (int i = 0; i < B; ++i) w[i] = 0;
#pragma unroll
  for (int e = 0; e < E; ++e) put_code<B>(w, c[e], (lane % LPG) * E + e);
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int i = 0; i < B; ++i) {
      const uint32_t v = __reduce_or_sync(0xffffffffu, lane / LPG == g ? w[i] : 0u);
      if (lane == (g * B + i) % 32) out[g * B + i] = v;
    }
}

// The code of u in a part of B bits: B <= 4 over the boundaries `bound` (constant bank), 5..8 bits
// over the part's 2^B - 1 boundaries wb (shared memory).
template <int B>
__device__ __forceinline__ uint32_t part_code(float u, const float (&bound)[15], const float* wb) {
  if constexpr (B >= 5) return search_wide<B>(u, wb);
  else return code_of<B>(u, bound);
}

// One Hadamard part (dimension M, B bits) of one staged row: normalize, rotate, quantize, pack,
// store the M/32 groups (B words each) at out. Whole warp.
template <int M, int B, int DT>
__device__ __forceinline__ void encode_hadamard_part(const uint4* row, int first, float inv, const uint32_t (&sign)[kRounds][8],
                                                     const float (&bound)[15], const float* wb, uint32_t* out, int lane) {
  constexpr int E = M / 32;
  float x[E];
  rotate_part<M, DT>(row, first, inv, sign, x, lane);
  uint32_t c[E];
#pragma unroll
  for (int e = 0; e < E; ++e) c[e] = part_code<B>(x[e], bound, wb);
  store_part_codes<M, B>(c, out, lane);
}

// Squared norms of a tile row's two parts (16-byte chunks [0, CH0) and [CH0, CH0 + CH1)): one chain
// each in coordinate order (the CPU's), both in step (CH0 <= CH1).
template <int DT, int CH0, int CH1>
__device__ __forceinline__ void part_squares(const uint4* row, double& s0, double& s1) {
  s0 = 0.0;
  s1 = 0.0;
#pragma unroll
  for (int c = 0; c < CH1; ++c) {
    add_squares<DT>(row[CH0 + c], s1);
    if (c < CH0) add_squares<DT>(row[c], s0);
  }
}

// acc[v][k] = fma chain over j = 0..M-1 (ascending: the CPU's order) of mcol[j * M + 32k] · x[j * V + v]
// for the lane's rows l + 32k (K = M / 32) of an M x M matrix (mcol: its column l, row-major rows j)
// times V vectors x[j][v] (shared memory, broadcast). The matrix rows come in batches of U, all
// loaded before the batch's FMAs (one memory round trip per batch: what a small append waits for).
// Acc float: fp32 FMA (the fractional codecs' dense part 1, as the CPU); double: DFMA (the QJL
// sketches, and the fractional prod codecs' dense part 1).
template <int M, int V, int U, class Acc>
__device__ __forceinline__ void lane_matvec(const float* mcol, const float* x, Acc (&acc)[V][M / 32]) {
  constexpr int K = M / 32;
  static_assert(V % 4 == 0 && M % U == 0, "float4 reads of x, whole batches");
#pragma unroll
  for (int a = 0; a < V; ++a)
#pragma unroll
    for (int k = 0; k < K; ++k) acc[a][k] = Acc(0);
  for (int j0 = 0; j0 < M; j0 += U) {
    float m[U][K];
#pragma unroll
    for (int jj = 0; jj < U; ++jj)
#pragma unroll
      for (int k = 0; k < K; ++k) m[jj][k] = __ldg(mcol + (j0 + jj) * M + 32 * k);
#pragma unroll
    for (int jj = 0; jj < U; ++jj) {
      const float4* xj = reinterpret_cast<const float4*>(x + (j0 + jj) * V);
#pragma unroll
      for (int a4 = 0; a4 < V / 4; ++a4) {
        const float4 q = xj[a4];
        const Acc ua[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int b = 0; b < 4; ++b)
#pragma unroll
          for (int k = 0; k < K; ++k) {
            if constexpr (std::is_same_v<Acc, float>) acc[4 * a4 + b][k] = __fmaf_rn(ua[b], m[jj][k], acc[4 * a4 + b][k]);
            else acc[4 * a4 + b][k] = fma(double(m[jj][k]), ua[b], acc[4 * a4 + b][k]);
          }
      }
    }
  }
}

// One pass of the dense part 1 over vectors [t0, t0 + VP) of the tile (t0 a multiple of VP or of
// a larger pass size: t0 + VP <= 32). Whole warp.
//   fill   : u[j][v] = x[t0 + v][M0 + j] · inv1 (fp32, = the CPU's u; zero past the tile)
//   product: acc[v][k] = fma chain over j = 0..M1-1 of u[j][v] · M[lane + 32k][j] (the CPU's
//            order); the matrix rows j come in batches of U, all loaded before the batch's fmas
//            (one L2 round trip per batch: what a small append waits for)
//   codes  : group k of vector v = outputs 32k .. 32k+31, one per lane: B1 words by redux.sync
template <int M0, int M1, int B1, int DT, int VP>
__device__ __forceinline__ void dense_pass(const FracParams& P, const uint4* tile, float* u, int t0, int nv, float inv1,
                                           long long dst, int lane) {
  constexpr int K = M1 / 32;
  constexpr int U = K <= 3 ? 16 : 8;  // matrix rows per batch: 48 registers of loads
  constexpr int RS = tile_row_stride(M0 + M1, DT == 0 ? 4 : 2) / 16;
  static_assert(32 % VP == 0 && VP % 4 == 0 && M1 % U == 0, "whole fills, float4 reads, whole batches");
  const int v = lane % VP, t = t0 + v;  // the lane's vector in the fill (VP divides 32)
  const float iv = __shfl_sync(0xffffffffu, inv1, t);
  __syncwarp();  // the previous pass has read u
  for (int idx = lane; idx < M1 * VP; idx += 32)
    u[idx] = t < nv ? __fmul_rn(row_elem<DT>(tile + t * RS, M0 + idx / VP), iv) : 0.0f;
  __syncwarp();
  float acc[VP][K];
  lane_matvec<M1, VP, U>(P.dense + lane, u, acc);
  constexpr int OFF1 = int(packed_bytes(M0, B1 + 1)) / 4;  // part 1 codes, in words
#pragma unroll
  for (int a = 0; a < VP; ++a) {
    const long long vdst = __shfl_sync(0xffffffffu, dst, t0 + a);  // -1 past the tile (lanes >= nv)
    if (vdst < 0) continue;
    uint32_t* out = reinterpret_cast<uint32_t*>(P.pool + vdst) + OFF1;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      uint32_t w[B1];
#pragma unroll
      for (int i = 0; i < B1; ++i) w[i] = 0;
      put_code<B1>(w, code_of<B1>(acc[a][k], P.bound[1]), lane);
#pragma unroll
      for (int i = 0; i < B1; ++i) {
        const uint32_t r = __reduce_or_sync(0xffffffffu, w[i]);
        if (lane == k * B1 + i) out[k * B1 + i] = r;
      }
    }
  }
}

template <int D, int BITS, int DT>
__global__ void __launch_bounds__(kTileWarps * 32) append_frac_kernel(const __grid_constant__ FracParams P) {
  constexpr int M0 = frac_hi(D, BITS), M1 = D - M0;  // part dims (M0 <= M1)
  constexpr int B0 = BITS + 1, B1 = BITS;
  constexpr bool DENSE = frac_dense(D, BITS);
  constexpr int OFF1 = int(packed_bytes(M0, B0)) / 4;  // part 1 codes, in words
  constexpr int ISZ = DT == 0 ? 4 : 2;
  constexpr int CH0 = M0 * ISZ / 16, CH1 = M1 * ISZ / 16;  // 16-byte chunks per part
  constexpr int CH = CH0 + CH1;
  constexpr int RS = tile_row_stride(D, ISZ) / 16;
  static_assert(M0 % 32 == 0 && M1 % 32 == 0 && (M0 & (M0 - 1)) == 0, "whole code groups, Hadamard part 0");
  static_assert(DENSE || M1 == M0, "part 1 Hadamard only for equal halves (tq1.5, tq3.5)");
  extern __shared__ uint4 smem[];
  // Parts of 5..8 bits (tq4.5 .. tq7.5): their boundaries, part 0's then part 1's, in shared memory.
  constexpr int NB0 = B0 >= 5 ? (1 << B0) - 1 : 0, NB1 = B1 >= 5 ? (1 << B1) - 1 : 0;
  [[maybe_unused]] float* wb = nullptr;
  if constexpr (NB0 + NB1 > 0) {
    wb = wide_bounds<NB0 + NB1>();
    for (int i = threadIdx.x; i < NB0 + NB1; i += blockDim.x) wb[i] = P.wbound[i];
    __syncthreads();
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long total = (long long)P.n_tokens * P.Hkv;
  const long long v0 = ((long long)blockIdx.x * kTileWarps + warp) * P.vpw;
  if (v0 >= total) return;
  const int nv = int(min((long long)P.vpw, total - v0));
  uint4* tile = smem + warp * (frac_warp_bytes(D, BITS, ISZ, P.vpw) / 16);

  // ---- stage: rows v0 .. v0+nv into the tile ----
  stage_rows<CH, RS>(static_cast<const uint4*>(P.x) + size_t(v0) * CH, nv, tile, lane, [](int, uint4 v) { return v; });
  __syncwarp();

  // ---- norms of row `lane`: two chains in double, each in coordinate order (the CPU's) ----
  float inv0 = 1.0f, inv1 = 1.0f;
  long long dst = -1;  // byte offset of the vector's codes in the pool; -1: skip
  if (lane < nv) {
    int head;
    const int slot = checked_slot(P, v0 + lane, head);
    if (slot >= 0) {
      const uint4* row = tile + lane * RS;
      double s0, s1;
      part_squares<DT, CH0, CH1>(row, s0, s1);
      const double n0 = sqrt(s0), n1 = sqrt(s1);
      inv0 = n0 > 0.0 ? float(1.0 / n0) : 1.0f;  // the CPU's x * 1.0f for a zero part
      inv1 = n1 > 0.0 ? float(1.0 / n1) : 1.0f;
      const int page = slot / int(P.layout.page_tokens), off = slot % int(P.layout.page_tokens);
      const size_t base = size_t(page) * P.layout.page_bytes();
      dst = (long long)(base + P.layout.codes_offset(head, off));
      const float f0 = float(n0), f1 = float(n1);
      if (!(f0 < 65504.f) || !(f1 < 65504.f)) atomicOr(P.error_flag, 2);  // beyond fp16 norms (the CPU throws)
      *reinterpret_cast<__half2*>(P.pool + base + P.layout.scalars_offset(head, off)) =
          __halves2half2(__float2half_rn(f0), __float2half_rn(f1));
    }
  }

  // ---- Hadamard parts: one vector at a time, the whole warp ----
  for (int t = 0; t < nv; ++t) {
    const long long vdst = __shfl_sync(0xffffffffu, dst, t);
    const float i0 = __shfl_sync(0xffffffffu, inv0, t), i1 = __shfl_sync(0xffffffffu, inv1, t);
    if (vdst < 0) continue;
    uint32_t* out = reinterpret_cast<uint32_t*>(P.pool + vdst);
    encode_hadamard_part<M0, B0, DT>(tile + t * RS, 0, i0, P.sign[0], P.bound[0], wb, out, lane);
    if constexpr (!DENSE)
      encode_hadamard_part<M1, B1, DT>(tile + t * RS, M0, i1, P.sign[1], P.bound[1], wb + NB0, out + OFF1, lane);
  }

  // ---- dense part 1: passes of VD vectors (the last one of <= 4 vectors: a decode step's few
  // vectors per warp do not pay for VD), lane owning outputs lane + 32k ----
  if constexpr (DENSE) {
    constexpr int VD = frac_vd(D);
    float* u = reinterpret_cast<float*>(tile + P.vpw * RS);  // [M1][VD] (a pass of VP uses [M1][VP])
    for (int t0 = 0; t0 < nv; t0 += VD) {
      if (nv - t0 <= 4) dense_pass<M0, M1, B1, DT, 4>(P, tile, u, t0, nv, inv1, dst, lane);
      else dense_pass<M0, M1, B1, DT, VD>(P, tile, u, t0, nv, inv1, dst, lane);
    }
  }
}

}  // namespace tq::cuda::append
