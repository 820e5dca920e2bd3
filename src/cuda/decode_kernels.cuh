// src/cuda/decode_kernels.cuh — kernels of the fused decode attention (see turboquant/cuda/decode.h).
//
// Three launches per decode step:
//   1. rotate_q      q [B,Hq,D] -> q_rot [B,Hq,D] fp32: randomized Hadamard (K codec's signs, 3
//                    rounds) and the softmax scale folded in (plain copy for fp16 K).
//   2. decode_split  grid (S splits, Hkv, B), 64 threads: one block streams one split of one
//                    sequence's pages for one KV head and all G = Hq/Hkv query heads of its group,
//                    so every K/V byte is read once per KV head. Scores: one thread per token,
//                    codes unpacked in registers, centroids from a per-lane replicated smem table
//                    (no bank conflicts); V: one thread per coordinate, accumulated in the rotated
//                    domain with p·norm folded in; online softmax across tiles.
//   3. merge_unrotate grid (B*Hq), D threads: merges the S partial states (log-sum-exp), applies
//                    the inverse rotation once per output row, writes out in its dtype.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "cuda/core_decode_util.cuh"
#include "turboquant/layout.h"

namespace tq::cuda::kern {

constexpr int kThreads = 64;  // threads per decode block = tokens per tile
constexpr int kTile = 64;
constexpr int kRounds = 3;    // Hadamard rounds (Rotation::kHadamardRounds)
// 32-bit words per token of a K or V row: bits 0 = fp16 values.
constexpr int kStageWords(int d, int bits) { return bits ? d * bits / 32 : d / 2; }
constexpr int stage_bytes(int d, int kb, int vb) {
  return 4 * (kTile * (kStageWords(d, kb) + 1) + kTile * kStageWords(d, vb));
}

struct Params {
  const float* q_rot;          // [B, Hq, D]
  const uint8_t* k_pool;
  const uint8_t* v_pool;
  const int32_t* page_table;   // [B, max_pages]
  const int32_t* seq_lens;     // [B]
  float* part_o;               // [B, Hq, S, D]
  float* part_ml;              // [B, Hq, S, 2]
  const float* k_centroids;    // [2^kb]
  const float* v_centroids;    // [2^vb]
  KvPageLayout kl, vl;
  int* error_flag;              // bit 0: a seq_len out of range, bit 1: a page id out of range
  int B, Hq, Hkv, G, max_pages, num_pages, splits, chunk;
};

// ---- code unpacking (group-plane layout, layout.h) ---------------------------------------------
// Code at position pos (0..31) of a group whose words are gw[0..bits). With pos known at compile
// time (unrolled loops) the plane arithmetic folds to a couple of shift/and per plane.
template <int BITS>
__device__ __forceinline__ uint32_t group_code(const uint32_t* gw, int pos) {
  int w[3] = {0, 0, 0};
  const int np = plane_widths(BITS, w);
  uint32_t v = 0;
  int wb = 0, off = 0;
#pragma unroll
  for (int p = 0; p < 3; ++p) {
    if (p < np) {
      int word = 0;
      const int sh = plane_pos(w[p], pos, &word);
      v |= ((gw[wb + word] >> sh) & ((1u << w[p]) - 1u)) << off;
      wb += w[p];
      off += w[p];
    }
  }
  return v;
}

// In-place orthonormal FWHT of x[0..D) in shared memory by D threads.
template <int D>
__device__ __forceinline__ void block_fwht(float* x) {
  const int i = threadIdx.x;
#pragma unroll
  for (int h = 1; h < D; h <<= 1) {
    if (i < D / 2) {
      const int j = (i / h) * 2 * h + (i % h);
      const float a = x[j], b = x[j + h];
      x[j] = a + b;
      x[j + h] = a - b;
    }
    __syncthreads();
  }
  x[i] *= rsqrtf(float(D));
  __syncthreads();
}

// 1. q [B,Hq,D] (T) -> q_rot fp32; grid B*Hq, block D. Also clears the run's error flag.
template <int D, typename T>
__global__ void rotate_q(const T* __restrict__ q, const float* __restrict__ signs, int rotate, float scale,
                         float* __restrict__ q_rot, int* __restrict__ error_flag) {
  __shared__ float x[D];
  if (blockIdx.x == 0 && threadIdx.x == 0) *error_flag = 0;  // the flag describes this run only
  const size_t row = blockIdx.x;
  x[threadIdx.x] = to_f32(q[row * D + threadIdx.x]);
  __syncthreads();
  if (rotate) {
#pragma unroll 1
    for (int r = 0; r < kRounds; ++r) {
      x[threadIdx.x] *= signs[r * D + threadIdx.x];
      __syncthreads();
      block_fwht<D>(x);
    }
  }
  q_rot[row * D + threadIdx.x] = x[threadIdx.x] * scale;
}

// 2. Split-KV decode. KB / VB: bits of the TurboQuant K / V codes, 0 = fp16 pass-through.
template <int D, int KB, int VB, int MAXG>
__global__ void __launch_bounds__(kThreads) decode_split(const Params P) {
  constexpr int NC = D / kThreads;           // coordinates per thread in the V phase
  constexpr int KTAB = KB ? (1 << KB) : 1;
  constexpr int VTAB = VB ? (1 << VB) : 1;
  __shared__ float4 q_s[D][MAXG / 4];        // q_rot of the group, [coordinate][head]
  __shared__ float ktab[KTAB][32];           // centroids replicated per lane
  __shared__ float vtab[VTAB][32];
  __shared__ float p_s[kTile][MAXG];         // softmax weights (times the V norm) of the tile
  __shared__ float red[kThreads / 32][MAXG];
  __shared__ float tile_stat[MAXG];
  // K and V codes of the tile staged in (dynamic) shared memory, all loads of a tile in flight at
  // once: without it each thread walked its token's row with dependent global loads and the
  // kernel was latency-bound (0.4-0.8x of SDPA, docs/CUDA.md). K rows are padded by one word so
  // that thread t reading row t hits distinct banks; V rows are read by all threads at once
  // (broadcast) and stay dense.
  constexpr int KW = kStageWords(D, KB), VW = kStageWords(D, VB);
  extern __shared__ __align__(16) uint32_t stage[];
  uint32_t* k_stage = stage;                   // [kTile][KW + 1]
  uint32_t* v_stage = stage + kTile * (KW + 1);  // [kTile][VW]

  const int split = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int G = P.G;
  int L = P.seq_lens[b];
  if (L < 0 || L > P.max_pages * int(P.kl.page_tokens)) {  // bad length: flag it, attend to nothing
    if (threadIdx.x == 0) atomicOr(P.error_flag, 1);
    L = 0;
  }
  const int t0 = split * P.chunk, t1 = min(L, t0 + P.chunk);

  for (int i = tid; i < D * MAXG; i += kThreads) {
    const int c = i / MAXG, g = i % MAXG;
    reinterpret_cast<float*>(q_s[c])[g] = g < G ? P.q_rot[(size_t(b) * P.Hq + hk * G + g) * D + c] : 0.f;
  }
  if (KB) for (int i = tid; i < KTAB * 32; i += kThreads) ktab[i / 32][i % 32] = P.k_centroids[i / 32];
  if (VB) for (int i = tid; i < VTAB * 32; i += kThreads) vtab[i / 32][i % 32] = P.v_centroids[i / 32];
  __syncthreads();

  // V codes are read at position `lane` of their group: plane words / shifts fixed per thread.
  constexpr int VPLANES = VB == 0 ? 1 : (VB == 8 ? 1 : (VB >= 4) + ((VB & 2) != 0) + (VB & 1));
  int v_word[VPLANES], v_shift[VPLANES], v_off[VPLANES];
  uint32_t v_mask[VPLANES];
  {
    int w[3] = {0, 0, 0};
    const int np = plane_widths(VB ? VB : 1, w);
    int wb = 0, off = 0;
#pragma unroll
    for (int p = 0; p < VPLANES; ++p) {
      int word = 0;
      v_shift[p] = p < np ? plane_pos(w[p], lane, &word) : 0;
      v_word[p] = wb + word;
      v_off[p] = off;
      v_mask[p] = (1u << w[p]) - 1u;
      wb += w[p];
      off += w[p];
    }
  }
  float m[MAXG], l[MAXG], acc[NC][MAXG];
#pragma unroll
  for (int g = 0; g < MAXG; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < NC; ++i) acc[i][g] = 0.f;
  }

  const uint32_t kpage = P.kl.page_bytes(), vpage = P.vl.page_bytes();
  for (int tb = t0; tb < t1; tb += kTile) {
    const int n_tile = min(kTile, t1 - tb);
    const int page = P.page_table[size_t(b) * P.max_pages + tb / P.kl.page_tokens];
    if (page < 0 || page >= P.num_pages) {  // bad page id: flag it, skip the tile (uniform branch)
      if (threadIdx.x == 0) atomicOr(P.error_flag, 2);
      continue;
    }
    const int off0 = tb % P.kl.page_tokens;  // tiles never straddle pages (page_tokens % kTile == 0)
    const uint8_t* kbase = P.k_pool + size_t(page) * kpage;
    const uint8_t* vbase = P.v_pool + size_t(page) * vpage;

    {
      const uint32_t* ksrc = reinterpret_cast<const uint32_t*>(kbase + P.kl.codes_offset(hk, off0));
      const uint32_t* vsrc = reinterpret_cast<const uint32_t*>(vbase + P.vl.codes_offset(hk, off0));
      for (int i = tid; i < n_tile * KW; i += kThreads) k_stage[(i / KW) * (KW + 1) + i % KW] = ksrc[i];
      for (int i = tid; i < n_tile * VW; i += kThreads) v_stage[i] = vsrc[i];
    }
    __syncthreads();
    // ---- scores: thread = token ----
    float s[MAXG];
#pragma unroll
    for (int g = 0; g < MAXG; ++g) s[g] = 0.f;
    const bool valid = tid < n_tile;
    if (valid) {
      const int off = off0 + tid;
      if constexpr (KB == 0) {
        const uint32_t* kr = k_stage + tid * (KW + 1);
#pragma unroll 8
        for (int c8 = 0; c8 < D / 8; ++c8) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const uint32_t raw = kr[c8 * 4 + e];
            const float2 kv = __half22float2(*reinterpret_cast<const __half2*>(&raw));
            const int c = c8 * 8 + 2 * e;
#pragma unroll
            for (int g4 = 0; g4 < MAXG / 4; ++g4) {
              const float4 qa = q_s[c][g4], qb = q_s[c + 1][g4];
              s[4 * g4 + 0] += qa.x * kv.x + qb.x * kv.y;
              s[4 * g4 + 1] += qa.y * kv.x + qb.y * kv.y;
              s[4 * g4 + 2] += qa.z * kv.x + qb.z * kv.y;
              s[4 * g4 + 3] += qa.w * kv.x + qb.w * kv.y;
            }
          }
        }
      } else {
        const uint32_t* kw = k_stage + tid * (KW + 1);
#pragma unroll 1
        for (int grp = 0; grp < D / 32; ++grp) {
          uint32_t w[KB];
#pragma unroll
          for (int j = 0; j < KB; ++j) w[j] = kw[grp * KB + j];
#pragma unroll
          for (int pos = 0; pos < 32; ++pos) {
            const float kv = ktab[group_code<KB>(w, pos)][lane];
            const int c = grp * 32 + pos;
#pragma unroll
            for (int g4 = 0; g4 < MAXG / 4; ++g4) {
              const float4 qa = q_s[c][g4];
              s[4 * g4 + 0] += qa.x * kv;
              s[4 * g4 + 1] += qa.y * kv;
              s[4 * g4 + 2] += qa.z * kv;
              s[4 * g4 + 3] += qa.w * kv;
            }
          }
        }
        const float nk = half_at(kbase + P.kl.scalars_offset(hk, off));
#pragma unroll
        for (int g = 0; g < MAXG; ++g) s[g] *= nk;
      }
    }
#pragma unroll
    for (int g = 0; g < MAXG; ++g) if (!valid) s[g] = -INFINITY;

    // ---- online softmax over the tile (block max, then block sum) ----
    warp_reduce_rows<true>(s, red, warp, lane);
    __syncthreads();
    if (tid < MAXG) {
      float v = red[0][tid];
      for (int w2 = 1; w2 < kThreads / 32; ++w2) v = fmaxf(v, red[w2][tid]);
      tile_stat[tid] = v;
    }
    __syncthreads();
    float alpha[MAXG], mnew[MAXG];
#pragma unroll
    for (int g = 0; g < MAXG; ++g) {
      mnew[g] = fmaxf(m[g], tile_stat[g]);
      alpha[g] = m[g] == -INFINITY ? 0.f : __expf(m[g] - mnew[g]);
      m[g] = mnew[g];
    }
    const float nv = (valid && VB) ? half_at(vbase + P.vl.scalars_offset(hk, off0 + tid)) : 1.f;
    float psum[MAXG];
#pragma unroll
    for (int g = 0; g < MAXG; ++g) {
      const float p = valid ? __expf(s[g] - mnew[g]) : 0.f;
      psum[g] = p;
      p_s[tid][g] = p * nv;
    }
    __syncthreads();  // red/tile_stat reads done before reuse; p_s and v_stage visible
    warp_reduce_rows<false>(psum, red, warp, lane);
    __syncthreads();
#pragma unroll
    for (int g = 0; g < MAXG; ++g) {
      float tot = 0.f;
      for (int w2 = 0; w2 < kThreads / 32; ++w2) tot += red[w2][g];
      l[g] = l[g] * alpha[g] + tot;
#pragma unroll
      for (int i = 0; i < NC; ++i) acc[i][g] *= alpha[g];
    }

    // ---- V: thread = coordinates tid + 64 i (position `lane` of group warp + 2 i) ----
    if constexpr (VB == 0) {
      for (int j = 0; j < n_tile; ++j) {
        const __half* vr = reinterpret_cast<const __half*>(v_stage + j * VW);
        float pj[MAXG];
#pragma unroll
        for (int g = 0; g < MAXG; ++g) pj[g] = p_s[j][g];
#pragma unroll
        for (int i = 0; i < NC; ++i) {
          const float vv = __half2float(vr[tid + kThreads * i]);
#pragma unroll
          for (int g = 0; g < MAXG; ++g) acc[i][g] += pj[g] * vv;
        }
      }
    } else {
      for (int j = 0; j < n_tile; ++j) {
        const uint32_t* vw = v_stage + j * VW;
        float pj[MAXG];
#pragma unroll
        for (int g4 = 0; g4 < MAXG / 4; ++g4) {
          const float4 p4 = reinterpret_cast<const float4*>(p_s[j])[g4];
          pj[4 * g4 + 0] = p4.x; pj[4 * g4 + 1] = p4.y; pj[4 * g4 + 2] = p4.z; pj[4 * g4 + 3] = p4.w;
        }
#pragma unroll
        for (int i = 0; i < NC; ++i) {
          const uint32_t* gw = vw + ((tid + kThreads * i) / 32) * VB;
          uint32_t code = 0;
#pragma unroll
          for (int p = 0; p < VPLANES; ++p) code |= ((gw[v_word[p]] >> v_shift[p]) & v_mask[p]) << v_off[p];
          const float vv = vtab[code][lane];
#pragma unroll
          for (int g = 0; g < MAXG; ++g) acc[i][g] += pj[g] * vv;
        }
      }
    }
    __syncthreads();  // p_s / v_stage are rewritten by the next tile
  }

  // ---- partial state of this split ----
#pragma unroll
  for (int g = 0; g < MAXG; ++g) {
    if (g < G) {
      const size_t row = (size_t(b) * P.Hq + hk * G + g) * P.splits + split;
#pragma unroll
      for (int i = 0; i < NC; ++i) P.part_o[row * D + tid + kThreads * i] = acc[i][g];
      if (tid == 0) {
        P.part_ml[row * 2 + 0] = m[g];
        P.part_ml[row * 2 + 1] = l[g];
      }
    }
  }
}

// 3. Merge the S partial states of one (b, h) row and undo the V rotation; grid B*Hq, block D.
template <int D, typename T>
__global__ void merge_unrotate(const float* __restrict__ part_o, const float* __restrict__ part_ml, int splits,
                               const float* __restrict__ signs, int unrotate, T* __restrict__ out) {
  __shared__ float x[D];
  const size_t row = blockIdx.x;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, part_ml[(row * splits + s) * 2]);
  float num = 0.f, den = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float ms = part_ml[(row * splits + s) * 2];
    if (ms == -INFINITY) continue;  // empty split
    const float w = __expf(ms - M);
    den += w * part_ml[(row * splits + s) * 2 + 1];
    num += w * part_o[(row * splits + s) * D + threadIdx.x];
  }
  x[threadIdx.x] = den > 0.f ? num / den : 0.f;
  __syncthreads();
  if (unrotate) {  // x = D1 H D2 H D3 H x
#pragma unroll 1
    for (int r = kRounds - 1; r >= 0; --r) {
      block_fwht<D>(x);
      x[threadIdx.x] *= signs[r * D + threadIdx.x];
      __syncthreads();
    }
  }
  out[row * D + threadIdx.x] = from_f32<T>(x[threadIdx.x]);
}

}  // namespace tq::cuda::kern
