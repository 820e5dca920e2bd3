// src/cuda/append_quad.cuh — the pieces of the append kernels (append.cuh) that write V in token
// quads (layout.h quad_pos; KvPageLayout::quad_bits; AppendPlan token_quads): the per-code atomic
// writer of v1 (QuadWords), the lane-word packing of v2 (LaneQuad) and v2's quad vector order.
#pragma once
#include <cstdint>

#include "cuda/append_params.h"
#include "turboquant/layout.h"

namespace tq::cuda::append {

// ---- V in token quads (layout.h quad_pos; KvPageLayout::quad_bits) ----------------------------
// A token's codes go to the 16-token block of its slot, each code to the token's own bits of a
// group-plane word that three other tokens share: cleared with atomicAnd and set with atomicOr, so
// the tokens of a block (other warps, other launches) may be written in any order. v1: per code
// (QuadWords: the code's bits of its group's words); v2: per lane word (LaneQuad below), and
// plain stores when a pass holds all 4 tokens sharing the words.
template <int BITS>
struct QuadWords {
  int group = -1;
  uint32_t set[BITS] = {}, clr[BITS] = {};
};
// Adds code c of token `tok` (0..15 in its block) at coordinate x; every add of one QuadWords must
// land in the same group (the callers add the coordinates x, x + 8, x + 16, ... of one 32-aligned run).
template <int BITS>
__device__ __forceinline__ void quad_add(QuadWords<BITS>& w, int tok, int x, uint32_t c) {
  constexpr Planes PL = planes(BITS);
  const QuadPos q = quad_pos(BITS, tok, x);
  w.group = q.group;
  int wb = 0, bo = 0;
#pragma unroll
  for (int p = 0; p < PL.n; ++p) {
    int word = 0;
    const int sh = plane_pos(PL.w[p], q.code, &word);
    const uint32_t m = (1u << PL.w[p]) - 1u;
#pragma unroll
    for (int k = 0; k < BITS; ++k)  // word wb + word is runtime: predicated adds to the register words
      if (k == wb + word) {
        w.clr[k] |= m << sh;
        w.set[k] |= ((c >> bo) & m) << sh;
      }
    wb += PL.w[p];
    bo += PL.w[p];
  }
}
// block: the 32-bit words of the 16-token block (BITS words per group).
template <int BITS>
__device__ __forceinline__ void quad_flush(uint32_t* block, const QuadWords<BITS>& w) {
  uint32_t* gw = block + BITS * w.group;
#pragma unroll
  for (int k = 0; k < BITS; ++k)
    if (w.clr[k]) {
      atomicAnd(gw + k, ~w.clr[k]);
      if (w.set[k]) atomicOr(gw + k, w.set[k]);
    }
}

// QUAD: V in token quads (P.layout.quad_bits == BITS; its own instantiations, so that the row
// kernels keep their registers).
// The v2 kernel's pack into token quads (QUAD; C = 32: lane q = 2j + p owns coordinates [32q,
// 32q + 32)). Lane code e (coordinate 32q + e) of token tok lands in group 4 (e & 7) + tok / 4 + 32 j
// of the token's block, word word(l, p), bit 4 s + 16 r + (2 h, or 2 p + h in the 1-bit plane)
// (s = tok & 3, r = (e >> 3) & 1, h = e >> 4: quad_pos and plane_pos written out, so that all is
// compile-time but the shift by 4 s (+ 2 p), applied once per word). Lane words l: BITS 4: l = h
// (group words 2p, 2p + 1); 3: the 2-bit word p and the 1-bit word 2; 2: word p; 1: word 0. The
// 1-bit plane's words are shared by the lanes p = 0, 1 of one j, the others belong to one lane.
template <int BITS>
struct LaneQuad {
  static constexpr int NW = BITS >= 3 ? 2 : 1;
  static constexpr bool shared(int l) { return BITS == 1 || (BITS == 3 && l == 1); }
  static constexpr int word(int l, int p) { return BITS == 4 ? 2 * p + l : BITS == 3 ? (l == 0 ? p : 2) : BITS == 2 ? p : 0; }
  __device__ static int shift(int l, int s, int p) { return shared(l) ? 4 * s + 2 * p : 4 * s; }
  // Adds code c of lane code e (compile time after unrolling), placed as for s = p = 0.
  __device__ static void add(uint32_t (&w)[NW], int e, uint32_t c) {
    const int r = (e >> 3) & 1, h = e >> 4;
    if constexpr (BITS == 4) {
      w[h] |= c << (16 * r);
    } else if constexpr (BITS == 3) {
      w[0] |= (c & 3u) << (16 * r + 2 * h);
      w[1] |= (c >> 2) << (16 * r + h);
    } else if constexpr (BITS == 2) {
      w[0] |= c << (16 * r + 2 * h);
    } else {
      w[0] |= c << (16 * r + h);
    }
  }
};

// QUAD vector order of the v2 kernel: quads of 4 consecutive tokens of one head, v = 4 (token / 4 ·
// Hkv + head) + token % 4, so that a pass holds the 4 tokens that share every word they touch in a
// block. The last quad is padded to 4 tokens (token >= n_tokens: skipped).
__device__ __forceinline__ void quad_vector(long long v, int Hkv, long long& token, int& head) {
  const long long u = v >> 2;
  token = 4 * (u / Hkv) + (v & 3);
  head = int(u % Hkv);
}

}  // namespace tq::cuda::append
