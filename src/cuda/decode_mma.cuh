// src/cuda/decode_mma.cuh — v2 split-KV decode for head_dim 128 and TurboQuant K/V (2/3/4 bits):
// QK and PV on tensor cores (mma.sync m16n8k16, f16 in, f32 accumulate), codes turned into fp16
// in registers by byte-permute (prmt) table lookups — no shared-memory tables, no per-code loads.
//
// Shapes per warp and 16-token step (one warp = one split unit; 4 warps per block):
//   S[16 heads(pad) x 8 tok]  = Q[16 x 16 dims] · Kᵀ[16 dims x 8 tok]     8 k-chunks, 2 token blocks
//   O[16 heads(pad) x 8 dims] += P[16 x 16 tok] · V[16 tok x 8 dims]      16 dim chunks
// The C fragment of S is the A fragment of P (FlashAttention-2 register reuse). Rows = heads of
// the GQA group (G <= 8, rows 8..15 are zero padding: tensor cores have time to spare).
//
// Coordinate permutation: scores are dot products and V is accumulated then un-rotated, so the
// rotated coordinates may be visited in any fixed order. Lane (g, t) decodes for K the group t
// (32 codes) of token g of the block, so that one prmt lookup of 4 nibble selectors yields the 4
// values of its B fragment for one k-chunk; for V it decodes 16 codes of group g/2 for its 4
// tokens. q is gathered into A fragments in that order, the output scattered back (kcode / vcode).
#pragma once
#include <cuda_fp16.h>
#include <cstdint>

#include "cuda/decode_kernels.cuh"

namespace tq::cuda::kern {

struct MmaTables {
  uint32_t klo[4], khi[4], vlo[4], vhi[4];  // fp16 centroids, low / high bytes, 4 per word
};

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t s) { return __byte_perm(a, b, s); }

// 4 codes (nibble selectors in the low 16 bits of s, top bit of each nibble clear for BITS < 4)
// -> low bytes and high bytes of their fp16 centroids.
template <int BITS>
__device__ __forceinline__ void lookup4(const uint32_t* lo_t, const uint32_t* hi_t, uint32_t s, uint32_t& lo,
                                        uint32_t& hi) {
  if constexpr (BITS == 4) {
    const uint32_t idx = s & 0x7777u;
    const uint32_t m = prmt(0x0000FF00u, 0u, (s >> 3) & 0x1111u);  // 0xFF bytes where bit 3 is set
    lo = (prmt(lo_t[0], lo_t[1], idx) & ~m) | (prmt(lo_t[2], lo_t[3], idx) & m);
    hi = (prmt(hi_t[0], hi_t[1], idx) & ~m) | (prmt(hi_t[2], hi_t[3], idx) & m);
  } else {
    lo = prmt(lo_t[0], lo_t[1], s);
    hi = prmt(hi_t[0], hi_t[1], s);
  }
}

// Selector words of a group: sel[i] holds 8 codes as nibbles. 2/3 bits: i = 2k + h gives codes
// 16k + 2m + h (m = nibble); 4 bits: i = w gives codes 8w + m.
template <int BITS>
__device__ __forceinline__ void selectors(const uint32_t* gw, uint32_t sel[4]) {
  if constexpr (BITS == 4) {
#pragma unroll
    for (int i = 0; i < 4; ++i) sel[i] = gw[i];
  } else if constexpr (BITS == 2) {
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      sel[2 * k] = gw[k] & 0x33333333u;
      sel[2 * k + 1] = (gw[k] >> 2) & 0x33333333u;
    }
  } else {  // 3 = 2-bit plane (words 0, 1) + 1-bit plane (word 2, bit 4m + 2k + h)
    const uint32_t h = gw[2];
    sel[0] = (gw[0] & 0x33333333u) | ((h << 2) & 0x44444444u);
    sel[1] = ((gw[0] >> 2) & 0x33333333u) | ((h << 1) & 0x44444444u);
    sel[2] = (gw[1] & 0x33333333u) | (h & 0x44444444u);
    sel[3] = ((gw[1] >> 2) & 0x33333333u) | ((h >> 1) & 0x44444444u);
  }
}

// K: code index (within lane t's group) of k-chunk kc, value jj (0,1: dims 2t+jj; 2,3: 2t+8+jj-2).
template <int BITS>
__host__ __device__ constexpr int kcode(int kc, int jj) {
  if (BITS == 4) return 8 * (kc >> 1) + 4 * (kc & 1) + jj;  // kc = 2w + half
  const int k = kc >> 2, h = (kc >> 1) & 1, half = kc & 1;  // kc = 4k + 2h + half
  return 16 * k + 2 * (4 * half + jj) + h;
}
// V: code index (within group n/2) of dim chunk nc = 8h + 4half + jj for output column n (k = n%2).
template <int BITS>
__host__ __device__ constexpr int vcode(int nc, int n) {
  const int k = n & 1, h = nc >> 3, half = (nc >> 2) & 1, jj = nc & 3;
  if (BITS == 4) return 16 * k + 8 * h + 4 * half + jj;
  return 16 * k + 2 * (4 * half + jj) + h;
}

__device__ __forceinline__ void mma16816(float* c, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_half2(float a, float b) {
  const __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}

template <int KB, int VB>
__global__ void __launch_bounds__(128) decode_mma(const Params P, const MmaTables T) {
  constexpr int D = 128;
  __shared__ float q_s[8][D];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int hk = blockIdx.y, b = blockIdx.z, G = P.G;
  for (int i = threadIdx.x; i < 8 * D; i += 128) {
    const int hh = i / D, c = i % D;
    q_s[hh][c] = hh < G ? P.q_rot[(size_t(b) * P.Hq + hk * G + hh) * D + c] : 0.f;
  }
  __syncthreads();
  const int split = blockIdx.x * 4 + warp;
  if (split >= P.splits) return;
  int L = P.seq_lens[b];
  if (L < 0 || L > P.max_pages * int(P.kl.page_tokens)) {
    if (lane == 0) atomicOr(P.error_flag, 1);
    L = 0;
  }
  const int t0 = split * P.chunk, t1 = min(L, t0 + P.chunk);

  // A fragments of Q (row g = head g; rows g+8 are padding), gathered in the K decode order.
  uint32_t qa0[8], qa2[8];
#pragma unroll
  for (int kc = 0; kc < 8; ++kc) {
    const float* q = q_s[g];
    qa0[kc] = pack_half2(q[32 * t + kcode<KB>(kc, 0)], q[32 * t + kcode<KB>(kc, 1)]);
    qa2[kc] = pack_half2(q[32 * t + kcode<KB>(kc, 2)], q[32 * t + kcode<KB>(kc, 3)]);
  }
  float o[16][4];
#pragma unroll
  for (int nc = 0; nc < 16; ++nc) o[nc][0] = o[nc][1] = o[nc][2] = o[nc][3] = 0.f;
  float m = -INFINITY, l = 0.f;  // row g's running max and sum (same value in the 4 lanes of g)

  const uint32_t kpage = P.kl.page_bytes(), vpage = P.vl.page_bytes();
  const uint32_t kcb = P.kl.codes_bytes, vcb = P.vl.codes_bytes;
  // Raw words and norms of one 16-token step, loaded one step ahead (software pipelining: the
  // loads of step i+1 are in flight while step i computes).
  struct Step {
    uint32_t kw[2][4];  // [token block][word of group t]
    uint32_t vw[4][2];  // [token 2t, 2t+1, 2t+8, 2t+9][words of group g/2 this lane needs]
    float kn[2][2], vn[2][2];
    bool ok;
  };
  auto load = [&](int base, Step& S) {
    const int page = P.page_table[size_t(b) * P.max_pages + base / P.kl.page_tokens];
    S.ok = page >= 0 && page < P.num_pages;
    if (!S.ok) {
      if (lane == 0) atomicOr(P.error_flag, 2);
      return;
    }
    const int off = base % P.kl.page_tokens;
    const uint8_t* kb = P.k_pool + size_t(page) * kpage + P.kl.codes_offset(hk, off);
    const uint8_t* ksc = P.k_pool + size_t(page) * kpage + P.kl.scalars_offset(hk, off);
    const uint8_t* vb = P.v_pool + size_t(page) * vpage + P.vl.codes_offset(hk, off);
    const uint8_t* vsc = P.v_pool + size_t(page) * vpage + P.vl.scalars_offset(hk, off);
#pragma unroll
    for (int nb = 0; nb < 2; ++nb) {
      const uint32_t* gw = reinterpret_cast<const uint32_t*>(kb + (8 * nb + g) * kcb) + t * KB;
#pragma unroll
      for (int i = 0; i < KB; ++i) S.kw[nb][i] = gw[i];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int tok = 8 * nb + 2 * t + j;
        const bool ok = base + tok < t1;  // never read norms past the sequence (garbage may be NaN)
        S.kn[nb][j] = ok ? __half2float(*reinterpret_cast<const __half*>(ksc + tok * P.kl.scalar_bytes)) : 0.f;
        S.vn[nb][j] = ok ? __half2float(*reinterpret_cast<const __half*>(vsc + tok * P.vl.scalar_bytes)) : 0.f;
      }
    }
    const int k = g & 1;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int tok = 2 * t + (r & 1) + 8 * (r >> 1);
      const uint32_t* gw = reinterpret_cast<const uint32_t*>(vb + tok * vcb) + (g >> 1) * VB;
      S.vw[r][0] = VB == 4 ? gw[2 * k] : gw[k];
      S.vw[r][1] = VB == 4 ? gw[2 * k + 1] : (VB == 3 ? gw[2] : 0u);
    }
  };

  Step cur, nxt;
  if (t0 < t1) load(t0, cur);
  for (int base = t0; base < t1; base += 16) {
    if (base + 16 < t1) load(base + 16, nxt);
    if (cur.ok) {
      // ---- S = Q K^T for tokens base + [0, 8) and base + [8, 16) ----
      float s[2][4];
#pragma unroll
      for (int nb = 0; nb < 2; ++nb) {
        s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
        uint32_t sel[4];
        selectors<KB>(cur.kw[nb], sel);
#pragma unroll
        for (int kc = 0; kc < 8; ++kc) {
          const uint32_t sw = sel[kc >> 1];  // kc = 2i + half: selector word i, 16-bit half
          uint32_t lo, hi;
          lookup4<KB>(T.klo, T.khi, (kc & 1) ? (sw >> 16) : sw, lo, hi);
          mma16816(s[nb], qa0[kc], 0u, qa2[kc], 0u, prmt(lo, hi, 0x5140), prmt(lo, hi, 0x7362));
        }
      }
      // Row g's scores for tokens base + 8nb + 2t + j: times the K norm; masked past t1.
      float mx = -INFINITY;
#pragma unroll
      for (int nb = 0; nb < 2; ++nb)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const bool ok = base + 8 * nb + 2 * t + j < t1;
          s[nb][j] = ok ? s[nb][j] * cur.kn[nb][j] : -INFINITY;
          mx = fmaxf(mx, s[nb][j]);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mnew = fmaxf(m, mx);
      const float alpha = m == -INFINITY ? 0.f : __expf(m - mnew);
      m = mnew;
      float p[2][2], psum = 0.f;
#pragma unroll
      for (int nb = 0; nb < 2; ++nb)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const bool ok = base + 8 * nb + 2 * t + j < t1;
          const float e = ok ? __expf(s[nb][j] - mnew) : 0.f;
          psum += e;
          p[nb][j] = e * cur.vn[nb][j];
        }
      psum += __shfl_xor_sync(0xffffffffu, psum, 1);
      psum += __shfl_xor_sync(0xffffffffu, psum, 2);
      l = l * alpha + psum;
#pragma unroll
      for (int nc = 0; nc < 16; ++nc) { o[nc][0] *= alpha; o[nc][1] *= alpha; }
      const uint32_t pa0 = pack_half2(p[0][0], p[0][1]), pa2 = pack_half2(p[1][0], p[1][1]);

      // ---- O += P V: lane decodes 16 codes of group g/2 for tokens 2t, 2t+1, 2t+8, 2t+9 ----
      uint32_t vsel[4][2];  // [token][selector word h]
      const int k = g & 1;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        if constexpr (VB == 4) {
          vsel[r][0] = cur.vw[r][0];
          vsel[r][1] = cur.vw[r][1];
        } else if constexpr (VB == 2) {
          vsel[r][0] = cur.vw[r][0] & 0x33333333u;
          vsel[r][1] = (cur.vw[r][0] >> 2) & 0x33333333u;
        } else {
          const uint32_t w0 = cur.vw[r][0], hbits = cur.vw[r][1];
          const int sh0 = 2 - 2 * k, sh1 = 1 - 2 * k;  // 1-bit plane: bit 4m + 2k + h -> bit 4m + 2
          const uint32_t h0 = sh0 >= 0 ? hbits << sh0 : hbits >> -sh0;
          const uint32_t h1 = sh1 >= 0 ? hbits << sh1 : hbits >> -sh1;
          vsel[r][0] = (w0 & 0x33333333u) | (h0 & 0x44444444u);
          vsel[r][1] = ((w0 >> 2) & 0x33333333u) | (h1 & 0x44444444u);
        }
      }
#pragma unroll
      for (int nc4 = 0; nc4 < 4; ++nc4) {  // 4 dim chunks share one 16-bit selector per token
        const int hsel = nc4 >> 1, half = nc4 & 1;
        uint32_t lo[4], hi[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const uint32_t sw = vsel[r][hsel];
          lookup4<VB>(T.vlo, T.vhi, half ? (sw >> 16) : sw, lo[r], hi[r]);
        }
        // Pair tokens (2t, 2t+1) -> b0 and (2t+8, 2t+9) -> b1, same dim: bytes [lo_A, hi_A, lo_B, hi_B].
        uint32_t bpair[2][4];
#pragma unroll
        for (int pr = 0; pr < 2; ++pr) {
          const uint32_t lo01 = prmt(lo[2 * pr], lo[2 * pr + 1], 0x5140), hi01 = prmt(hi[2 * pr], hi[2 * pr + 1], 0x5140);
          const uint32_t lo23 = prmt(lo[2 * pr], lo[2 * pr + 1], 0x7362), hi23 = prmt(hi[2 * pr], hi[2 * pr + 1], 0x7362);
          bpair[pr][0] = prmt(lo01, hi01, 0x5140);
          bpair[pr][1] = prmt(lo01, hi01, 0x7362);
          bpair[pr][2] = prmt(lo23, hi23, 0x5140);
          bpair[pr][3] = prmt(lo23, hi23, 0x7362);
        }
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) mma16816(o[4 * nc4 + jj], pa0, 0u, pa2, 0u, bpair[0][jj], bpair[1][jj]);
      }
    }
    cur = nxt;
  }

  // ---- partial state: row g = head g of the group; columns 2t, 2t+1 of each dim chunk ----
  if (g < G) {
    const size_t row = (size_t(b) * P.Hq + hk * G + g) * P.splits + split;
    // Column n of dim chunk nc was decoded by the lanes with g = n: code vcode<VB>(nc, n).
#pragma unroll
    for (int nc = 0; nc < 16; ++nc) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int n = 2 * t + j;
        P.part_o[row * D + 32 * (n >> 1) + vcode<VB>(nc, n)] = o[nc][j];
      }
    }
    if (t == 0) {
      P.part_ml[row * 2 + 0] = m;
      P.part_ml[row * 2 + 1] = l;
    }
  }
}

}  // namespace tq::cuda::kern
