// src/cuda/append_fprod.cuh — append kernel for the fractional TurboQuant-prod codecs tq1.5p ..
// tq7.5p: two parts per vector (uncalibrated split of the fractional codecs: part 0 = channels
// [0, m_0), m_0 = D/4 for tq2.5p, D/2 otherwise), each encoded as a TurboQuant-prod, bytes identical
// to TqCodec::encode (for prod: encode_reference).
//
// Per part p (dimension m_p, mse bits B (part 0) / B - 1 (part 1) of tqB.5p), the CPU computes
//   n_p = sqrt(sum of x_j^2 in double, j ascending), u = x_p * float(1 / n_p) (n_p = 0: u = x_p)
//   r = rot_p->forward(u): Hadamard parts as hadamard.cuh; tq2.5p's dense part 1 (96 / 192 dims) as
//       float(sum_j double(M[i][j]) * u_j, j ascending) (rotation.cpp apply_dense: double, not the
//       batched encoder's fp32 fma chain of append_frac)
//   code_j = Codebook::quantize(r_j), e_j = r_j - c_p[code_j] (fp32; tq1.5p's part 1 has 0 mse bits:
//       code 0, its one centroid, no codes stored; 5..7-bit parts of tq5.5p .. tq7.5p: search_wide
//       over the part's boundaries in shared memory, its centroids there too)
//   γ_p = sqrt(sum of e_j^2 in double, j ascending) (stored 0 for n_p = 0)
//   σ_i = [sum_j double(S_p[i][j]) * e_j >= 0] (double, j ascending)
// Products of two floats are exact in double, so DFMA chains in the CPU's order round like its
// multiply-then-add.
//
// Block: kTileWarps warps, warp w encoding vectors [w·vpw, w·vpw + vpw) (as append_prod):
//   stage : the tile into shared memory; lane t sums both part norms of row t, writes n_0, n_1
//   mse   : passes of VQ vectors. Hadamard parts one vector at a time (append_frac's pieces), the
//           residuals into e_s[j][VQ]; a dense part 1 for the whole pass: u into e_s's part-1 rows,
//           lane l owning outputs l + 32k (VQ·m_1/32 DFMA chains), then its codes (redux.sync) and
//           residuals over u
//   γ     : lane v < VQ sums part 0 of vector v, lane VQ + v part 1
//   QJL   : per part, lane l owns sketch rows l + 32k (qjl_part): VQ·m_p/32 DFMA chains over j
#pragma once
#include <cuda_fp16.h>
#include <cstdint>

#include "cuda/append_frac.cuh"
#include "cuda/append_prod.cuh"

namespace tq::cuda::append {

// One Hadamard part (dimension M, B mse bits) of staged row `row` for pass slot v: codes stored at
// out (if out), residuals e = r - c[code] into e_s[(first + j) * VQ + v]. Whole warp. B = 0 (tq1.5p's
// part 1): code 0 everywhere, nothing stored; B >= 5: the part's 2^B - 1 boundaries then its 2^B
// centroids at WOFF of the kernel's shared table of NW floats (wide_bounds<NW>).
template <int M, int B, int DT, int VQ, int NW = 0, int WOFF = 0>
__device__ __forceinline__ void fprod_hadamard_part(const uint4* row, int first, float inv, const uint32_t (&sign)[kRounds][8],
                                                    const float (&bound)[15], const float (&cent)[16], float* e_s, int v,
                                                    uint32_t* out, int lane) {
  constexpr int E = M / 32;
  [[maybe_unused]] const float* wt = nullptr;
  if constexpr (B >= 5) wt = wide_bounds<NW>() + WOFF;
  float x[E];
  rotate_part<M, DT>(row, first, inv, sign, x, lane);
  uint32_t c[E];
#pragma unroll
  for (int e = 0; e < E; ++e) {
    float ce;
    if constexpr (B == 0) {
      c[e] = 0;
      ce = cent[0];
    } else if constexpr (B >= 5) {
      c[e] = search_wide<B>(x[e], wt);
      ce = wt[(1 << B) - 1 + c[e]];
    } else {
      c[e] = code_of<B>(x[e], bound);
      ce = cent[c[e]];
    }
    e_s[(first + lane * E + e) * VQ + v] = __fsub_rn(x[e], ce);
  }
  if constexpr (B != 0)
    if (out) store_part_codes<M, B>(c, out, lane);
}

// BITS: the codec's rate B of tqB.5p (1..7; mse bits B and B - 1).
template <int D, int BITS, int DT>
__global__ void __launch_bounds__(kTileWarps * 32) append_fprod_kernel(const __grid_constant__ FprodParams P) {
  constexpr TqLayout L = fprod_layout(D, BITS);
  constexpr int M0 = int(L.part[0].dim), M1 = int(L.part[1].dim);
  constexpr int B0 = BITS, B1 = BITS - 1;
  constexpr bool DENSE = frac_dense(D, BITS);
  constexpr int W1 = int(L.part[1].mse_offset) / 4, Q0 = int(L.part[0].qjl_offset) / 4, Q1 = int(L.part[1].qjl_offset) / 4;
  constexpr int ISZ = DT == 0 ? 4 : 2;
  constexpr int CH0 = M0 * ISZ / 16, CH1 = M1 * ISZ / 16, CH = CH0 + CH1;  // 16-byte chunks per part
  constexpr int RS = tile_row_stride(D, ISZ) / 16;
  constexpr int VQ = prod_vq(D);
  static_assert(M0 % 32 == 0 && M1 % 32 == 0 && (M0 & (M0 - 1)) == 0 && (DENSE || M1 == M0), "whole groups, Hadamard part 0");
  static_assert(B1 >= 0 && B0 <= 7 && L.part[1].mse_offset % 4 == 0 && L.part[0].qjl_offset % 4 == 0 && L.part[1].qjl_offset % 4 == 0,
                "word-aligned sections");
  extern __shared__ uint4 smem[];
  // 5..7-bit mse parts (tq5.5p .. tq7.5p): per such part its boundaries then its centroids, part 0's
  // then part 1's, in shared memory (P.wtab).
  constexpr int NW0 = B0 >= 5 ? (2 << B0) - 1 : 0, NW1 = B1 >= 5 ? (2 << B1) - 1 : 0;
  if constexpr (NW0 + NW1 > 0) {
    float* wb = wide_bounds<NW0 + NW1>();
    for (int i = threadIdx.x; i < NW0 + NW1; i += blockDim.x) wb[i] = P.wtab[i];
    __syncthreads();
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if constexpr (D <= 128)  // the sketches (<= 40 KB) into L1 while the tile is staged and the mse stage runs
    for (int i = threadIdx.x; i < (M0 * M0 + M1 * M1) / 32; i += blockDim.x)
      asm volatile("prefetch.global.L1 [%0];" ::"l"(P.sketch_t + 32 * i));
  const long long total = (long long)P.n_tokens * P.Hkv;
  const long long v0 = ((long long)blockIdx.x * kTileWarps + warp) * P.vpw;
  if (v0 >= total) return;
  const int nv = int(min((long long)P.vpw, total - v0));
  uint4* tile = smem + warp * (prod_warp_bytes(D, ISZ, P.vpw) / 16);
  float* e_s = reinterpret_cast<float*>(tile + P.vpw * RS);  // [D][VQ]

  stage_rows<CH, RS>(static_cast<const uint4*>(P.x) + size_t(v0) * CH, nv, tile, lane, [](int, uint4 v) { return v; });
  __syncwarp();

  // ---- part norms of row `lane` (two chains, each in coordinate order), n_0 and n_1 written ----
  float inv0 = 1.0f, inv1 = 1.0f;
  bool nz0 = false, nz1 = false;
  long long dst = -1, sdst = -1;  // byte offsets of the vector's codes / scalars in the pool; -1: skip
  if (lane < nv) {
    int head;
    const int slot = checked_slot(P, v0 + lane, head);
    if (slot >= 0) {
      const uint4* row = tile + lane * RS;
      double s0, s1;
      part_squares<DT, CH0, CH1>(row, s0, s1);
      const double n0 = sqrt(s0), n1 = sqrt(s1);
      nz0 = n0 > 0.0;
      nz1 = n1 > 0.0;
      inv0 = nz0 ? float(1.0 / n0) : 1.0f;  // the CPU leaves a zero part unscaled
      inv1 = nz1 ? float(1.0 / n1) : 1.0f;
      const int page = slot / int(P.layout.page_tokens), off = slot % int(P.layout.page_tokens);
      const size_t base = size_t(page) * P.layout.page_bytes();
      dst = (long long)(base + P.layout.codes_offset(head, off));
      sdst = (long long)(base + P.layout.scalars_offset(head, off));
      const float f0 = float(n0), f1 = float(n1);
      if (!(f0 < 65504.f) || !(f1 < 65504.f)) atomicOr(P.error_flag, 2);  // beyond fp16 norms (the CPU throws)
      *reinterpret_cast<__half*>(P.pool + sdst + L.part[0].norm_offset) = __float2half_rn(f0);
      *reinterpret_cast<__half*>(P.pool + sdst + L.part[1].norm_offset) = __float2half_rn(f1);
    }
  }

  for (int t0 = 0; t0 < nv; t0 += VQ) {
    // ---- mse stage of the Hadamard parts, one vector at a time; residuals into e_s ----
#pragma unroll 1
    for (int v = 0; v < VQ; ++v) {
      const int t = t0 + v;
      if (t >= nv) {  // warp-uniform: past the tile, e = 0
#pragma unroll
        for (int e = 0; e < D / 32; ++e) e_s[(lane * (D / 32) + e) * VQ + v] = 0.0f;
        continue;
      }
      const long long vdst = __shfl_sync(0xffffffffu, dst, t);
      const float i0 = __shfl_sync(0xffffffffu, inv0, t), i1 = __shfl_sync(0xffffffffu, inv1, t);
      uint32_t* out = vdst >= 0 ? reinterpret_cast<uint32_t*>(P.pool + vdst) : nullptr;
      fprod_hadamard_part<M0, B0, DT, VQ, NW0 + NW1, 0>(tile + t * RS, 0, i0, P.sign[0], P.bound[0], P.cent[0], e_s, v, out,
                                                        lane);
      if constexpr (!DENSE)
        fprod_hadamard_part<M1, B1, DT, VQ, NW0 + NW1, NW0>(tile + t * RS, M0, i1, P.sign[1], P.bound[1], P.cent[1], e_s, v,
                                                            out ? out + W1 : nullptr, lane);
    }
    // ---- dense part 1 (tq2.5p) of the pass: u = x_1 · inv_1 into e_s rows [M0, D), then
    // y_i = float(sum_j double(M[i][j]) u_j), lane owning outputs lane + 32k ----
    if constexpr (DENSE) {
      constexpr int K = M1 / 32, U = K <= 3 ? 16 : 8;
      static_assert(VQ * K <= 32 && M1 % U == 0, "32 accumulators at most, whole batches");
      float* u = e_s + M0 * VQ;  // [M1][VQ]
      const int v = lane % VQ, t = t0 + v;
      const float iv = __shfl_sync(0xffffffffu, inv1, min(t, nv - 1));
      __syncwarp();
      for (int idx = lane; idx < M1 * VQ; idx += 32)  // idx % VQ == v (VQ divides 32)
        u[idx] = t < nv ? __fmul_rn(row_elem<DT>(tile + t * RS, M0 + idx / VQ), iv) : 0.0f;
      __syncwarp();
      double acc[VQ][K];
      lane_matvec<M1, VQ, U>(P.dense + lane, u, acc);
      __syncwarp();  // every lane has read u: the residuals overwrite it
#pragma unroll
      for (int a = 0; a < VQ; ++a) {
        const long long vdst = __shfl_sync(0xffffffffu, dst, min(t0 + a, nv - 1));
        const bool store = t0 + a < nv && vdst >= 0;
        uint32_t* out = store ? reinterpret_cast<uint32_t*>(P.pool + vdst) + W1 : nullptr;
#pragma unroll
        for (int k = 0; k < K; ++k) {
          const float y = float(acc[a][k]);
          const uint32_t c = code_of<B1>(y, P.bound[1]);
          u[(32 * k + lane) * VQ + a] = t0 + a < nv ? __fsub_rn(y, P.cent[1][c]) : 0.0f;
          uint32_t w[B1];
#pragma unroll
          for (int i = 0; i < B1; ++i) w[i] = 0;
          put_code<B1>(w, c, lane);
#pragma unroll
          for (int i = 0; i < B1; ++i) {
            const uint32_t r = __reduce_or_sync(0xffffffffu, w[i]);
            if (store && lane == k * B1 + i) out[k * B1 + i] = r;
          }
        }
      }
    }
    __syncwarp();
    // ---- γ_0 of vector t0 + lane (lanes < VQ), γ_1 of vector t0 + lane - VQ (lanes VQ .. 2VQ-1) ----
    {
      const int p = lane < VQ ? 0 : 1, v = lane - p * VQ, t = min(t0 + v, nv - 1);
      const long long vs = __shfl_sync(0xffffffffu, sdst, t);
      const bool z0 = __shfl_sync(0xffffffffu, nz0, t), z1 = __shfl_sync(0xffffffffu, nz1, t);
      const bool nz = p ? z1 : z0;
      if (lane < 2 * VQ && t0 + v < nv && vs >= 0) {
        double g = 0.0;
        for (int j = p * M0; j < (p ? D : M0); ++j) {
          const double e = e_s[j * VQ + v];
          g = fma(e, e, g);
        }
        *reinterpret_cast<__half*>(P.pool + vs + (p ? L.part[1].gamma_offset : L.part[0].gamma_offset)) =
            __float2half_rn(nz ? float(sqrt(g)) : 0.0f);
      }
    }
    // ---- QJL signs per part ----
    qjl_part<M0, VQ>(P.sketch_t, e_s, P.pool, dst, t0, nv, Q0, lane);
    qjl_part<M1, VQ>(P.sketch_t + M0 * M0, e_s + M0 * VQ, P.pool, dst, t0, nv, Q1, lane);
    __syncwarp();  // e_s is rewritten by the next pass
  }
}

}  // namespace tq::cuda::append
