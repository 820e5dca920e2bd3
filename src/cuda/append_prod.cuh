// src/cuda/append_prod.cuh — append kernel for the TurboQuant-prod codecs tq2p .. tq8p (one part):
// mse codes, QJL signs, norm and gamma bit-identical to TqCodec::encode (for prod: encode_reference).
//
// Per vector (dimension D, mse bits MB = bits - 1), the CPU computes
//   n = sqrt(sum of x_j^2 in double, j ascending), u = x * float(1 / n)   (n = 0: u = x)
//   r = rot->forward(u)  (randomized Hadamard: hadamard.cuh repeats its float operations)
//   code_j = Codebook::quantize(r_j), e_j = r_j - c[code_j] (fp32)   (5..7 bits: search_wide over
//            the boundaries in shared memory, the centroids there too)
//   gamma = sqrt(sum of e_j^2 in double, j ascending)   (stored 0 for n = 0)
//   sigma_i = [sum_j double(S[i][j]) * e_j >= 0]  (double, j ascending)
// Products of two floats are exact in double, so a DFMA chain in the CPU's j order rounds exactly
// like its multiply-then-add: the same sums, the same signs.
//
// Block: kTileWarps warps, warp w encoding vectors [w·vpw, w·vpw + vpw) (as append_frac):
//   stage : the tile into shared memory (stage_rows), lane t sums the norm of row t and writes it
//   mse   : passes of VQ vectors, one vector at a time on the warp (lane l: coordinates
//           [l·E, l·E + E)): rotate, quantize, pack (append_frac's pieces), residuals into the
//           pass's e_s[j][VQ] in shared memory
//   QJL   : lane v < VQ sums gamma of vector v of the pass; lane l owns sketch rows l + 32k
//           (K = D/32): VQ·K DFMA chains over j, S^T[j][l + 32k] loaded coalesced in batches of
//           rows (L1: prefetched at kernel start for D <= 128), e_s[j][v] broadcast; signs packed
//           by redux.sync, one word per 32 rows
#pragma once
#include <cuda_fp16.h>
#include <cstdint>

#include "cuda/append_frac.cuh"

namespace tq::cuda::append {

// The QJL signs of one part (dimension M) for the pass's VQ vectors: sign(S e) with S^T = st
// (st[j * M + i] = S[i][j]) and e = e_s[j][v] (j < M), in double, j ascending; vector v's M/32 sign
// words go to word `qoff` of its codes (dst[v]: byte offset in the pool, < 0 = skip). Whole warp.
// Lane l owns rows l + 32k (K = M/32): VQ·K DFMA chains over j, the rows of S^T loaded coalesced in
// batches of U, all loaded before the batch's DFMAs (one memory round trip per batch: what a small
// append waits for), e_s[j][v] broadcast; signs packed by redux.sync, one word per 32 rows.
// (append_prod: one part, U = 32 / K; append_fprod.cuh: per part, the default U.)
template <int M, int VQ, int U = (M / 32 <= 3 ? 16 : M / 32 <= 4 ? 8 : 4)>  // (fprod: K = 6 at U = 8 spilled)
__device__ __forceinline__ void qjl_part(const float* st, const float* e_s, uint8_t* pool, long long dst, int t0, int nv,
                                         int qoff, int lane) {
  constexpr int K = M / 32;  // rows per lane
  static_assert(VQ % 4 == 0 && VQ * K <= 32 && M % U == 0, "float4 reads of e_s, 32 accumulators at most, whole batches");
  double acc[VQ][K];
  lane_matvec<M, VQ, U>(st + lane, e_s, acc);
#pragma unroll
  for (int v = 0; v < VQ; ++v) {
    const long long vdst = __shfl_sync(0xffffffffu, dst, min(t0 + v, nv - 1));
    if (t0 + v >= nv || vdst < 0) continue;
    uint32_t* out = reinterpret_cast<uint32_t*>(pool + vdst) + qoff;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      uint32_t w[1] = {0u};
      put_code<1>(w, acc[v][k] >= 0.0 ? 1u : 0u, lane);
      const uint32_t r = __reduce_or_sync(0xffffffffu, w[0]);
      if (lane == k) out[k] = r;
    }
  }
}

template <int D, int MB, int DT>
__global__ void __launch_bounds__(kTileWarps * 32) append_prod_kernel(const __grid_constant__ ProdParams P) {
  constexpr int E = D / 32, K = D / 32, VQ = prod_vq(D);
  constexpr int ISZ = DT == 0 ? 4 : 2;
  constexpr int CH = D * ISZ / 16, RS = tile_row_stride(D, ISZ) / 16;
  constexpr int QJL = int(packed_bytes(D, MB)) / 4;  // QJL signs, in words from the codes
  static_assert(VQ % 4 == 0 && VQ * K <= 32, "float4 reads of e_s, 32 accumulators at most");
  extern __shared__ uint4 smem[];
  // 5..7-bit mse codes (tq6p .. tq8p): the boundaries and centroids in shared memory (P.wtab).
  constexpr int NW = (2 << MB) - 1;
  if constexpr (MB >= 5) {
    for (int i = threadIdx.x; i < NW; i += blockDim.x) wide_bounds<NW>()[i] = P.wtab[i];
    __syncthreads();
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if constexpr (D <= 128)  // S^T (<= 64 KB) into L1 while the tile is staged and the mse stage runs
    for (int i = threadIdx.x; i < D * D / 32; i += blockDim.x) asm volatile("prefetch.global.L1 [%0];" ::"l"(P.sketch_t + 32 * i));
  const long long total = (long long)P.n_tokens * P.Hkv;
  const long long v0 = ((long long)blockIdx.x * kTileWarps + warp) * P.vpw;
  if (v0 >= total) return;
  const int nv = int(min((long long)P.vpw, total - v0));
  uint4* tile = smem + warp * (prod_warp_bytes(D, ISZ, P.vpw) / 16);
  float* e_s = reinterpret_cast<float*>(tile + P.vpw * RS);  // [D][VQ]

  stage_rows<CH, RS>(static_cast<const uint4*>(P.x) + size_t(v0) * CH, nv, tile, lane, [](int, uint4 v) { return v; });
  __syncwarp();

  // ---- norm of row `lane` (the CPU's order), fp16 norm written, destination handed out ----
  float inv = 1.0f;
  bool nonzero = false;
  long long dst = -1, sdst = -1;  // byte offsets of the vector's codes / scalars in the pool; -1: skip
  if (lane < nv) {
    int head;
    const int slot = checked_slot(P, v0 + lane, head);
    if (slot >= 0) {
      const uint4* row = tile + lane * RS;
      double ss = 0.0;
#pragma unroll 4
      for (int c = 0; c < CH; ++c) add_squares<DT>(row[c], ss);
      const double norm = sqrt(ss);
      nonzero = norm > 0.0;
      inv = nonzero ? float(1.0 / norm) : 1.0f;  // the CPU leaves a zero vector unscaled
      const int page = slot / int(P.layout.page_tokens), off = slot % int(P.layout.page_tokens);
      const size_t base = size_t(page) * P.layout.page_bytes();
      dst = (long long)(base + P.layout.codes_offset(head, off));
      sdst = (long long)(base + P.layout.scalars_offset(head, off));
      const float nf = float(norm);
      if (!(nf < 65504.f)) atomicOr(P.error_flag, 2);  // beyond fp16 norms (the CPU encoder throws)
      *reinterpret_cast<__half*>(P.pool + sdst) = __float2half_rn(nf);
    }
  }

  for (int t0 = 0; t0 < nv; t0 += VQ) {
    // ---- mse stage of the pass's vectors; residuals into e_s (zero past the tile) ----
#pragma unroll 1
    for (int v = 0; v < VQ; ++v) {
      const int t = t0 + v;
      if (t >= nv) {  // warp-uniform: past the tile
#pragma unroll
        for (int e = 0; e < E; ++e) e_s[(lane * E + e) * VQ + v] = 0.0f;
        continue;
      }
      const long long vdst = __shfl_sync(0xffffffffu, dst, t);
      const float vinv = __shfl_sync(0xffffffffu, inv, t);
      float x[E];
      rotate_part<D, DT>(tile + t * RS, 0, vinv, P.sign, x, lane);
      uint32_t c[E];
#pragma unroll
      for (int e = 0; e < E; ++e) {
        float ce;
        if constexpr (MB >= 5) {
          const float* wb = wide_bounds<NW>();
          c[e] = search_wide<MB>(x[e], wb);
          ce = wb[(1 << MB) - 1 + c[e]];
        } else {
          c[e] = code_of<MB>(x[e], P.bound);
          ce = P.cent[c[e]];
        }
        e_s[(lane * E + e) * VQ + v] = __fsub_rn(x[e], ce);
      }
      if (vdst >= 0) store_part_codes<D, MB>(c, reinterpret_cast<uint32_t*>(P.pool + vdst), lane);
    }
    __syncwarp();
    // ---- gamma of vector t0 + lane ----
    {
      const int t = min(t0 + lane, nv - 1);
      const long long vs = __shfl_sync(0xffffffffu, sdst, t);
      const bool nz = __shfl_sync(0xffffffffu, nonzero, t);
      if (lane < VQ && t0 + lane < nv && vs >= 0) {
        double g = 0.0;
        for (int j = 0; j < D; ++j) {
          const double e = e_s[j * VQ + lane];
          g = fma(e, e, g);
        }
        *reinterpret_cast<__half*>(P.pool + vs + 2) = __float2half_rn(nz ? float(sqrt(g)) : 0.0f);
      }
    }
    // ---- QJL signs: rows lane + 32k of S times e, in double, j ascending ----
    qjl_part<D, VQ, 32 / K>(P.sketch_t, e_s, P.pool, dst, t0, nv, QJL, lane);
    __syncwarp();  // e_s is rewritten by the next pass
  }
}

}  // namespace tq::cuda::append
