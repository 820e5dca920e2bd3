// src/kv/kv_read.cpp — rows out of quad-layout pages (layout.h, quad_pos).
//
// A 16-token quad block and its 16 rows hold the same bits, moved by a fixed permutation that
// never splits a plane field (a code's 4-, 2- or 1-bit slice), so it is done on 32-bit words by
// bit-matrix-transpose steps instead of code by code. Take one 64-coordinate chunk j (groups
// 32j..32j+31, rows' groups 2j and 2j+1) and one lane (t, w): word w of the groups 4g + t + 32j,
// g = 0..7. These 8 words X[g] (lane t*b + w of the chunk's 8 runs of 4b words) are an 8 x 32 bit
// matrix; write a bit position p as bits p0..p4 and g as g0 g1 g2. By layout.h (plane_pos,
// quad_pos), with nibble m = s + 4r (s = token % 4) and i the selector word:
//   w=4 plane (b = 4, i = w): p = 4m + f (f: bit of the code)  ->  token 4t+s, row group 2j + i/2,
//       row word 2(i&1) + r, bit 4g + f.           Exchange g0<->p2, g1<->p3, g2<->p4.
//   w=2 plane (word w < 2, b < 4): p = 4m + 2h + f (i = 2w + h)  ->  token 4t+s, row group 2j + w,
//       row word h, bit 16r + 2g + f.              Exchange g0<->p1, g1<->p2, g2<->p3.
//   w=1 plane (word b-1, odd b): p = 4m + i  ->  token 4t+s, row group 2j + i/2, row word b-1,
//       bit 16r + 4(g>>1) + 2(i&1) + (g&1).        Exchange g0<->p0, g0<->p1, g1<->p2, g2<->p3
//       (i&1 passes through the word index from p0 to p1).
// An exchange of g bit kb with position bit log2(sh) is one delta swap per word pair (g, g|kb).
// Afterwards word k (the old p bits, the token's s and r / h / i>>1) of each lane is one whole row
// word, and words k, k' that differ in r, h or i>>1 sit side by side in the row (put_pair) except
// for the w=1 plane at b = 3. The lanes of a b share the shifts (the w=1 plane's extra exchange
// has a zero mask in the other lanes), so four lanes go through one SSE2/NEON register.
#include "kv/kv_read.h"

#include <algorithm>
#include <vector>

namespace tq::kv {
namespace {

// Four 32-bit lanes (GCC/Clang vector extension: SSE2/NEON registers, plain code elsewhere).
typedef uint32_t U32x4 __attribute__((vector_size(16)));
typedef uint64_t U64x2 __attribute__((vector_size(16)));
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "words are loaded and stored as in memory");

// Exchanges bit kb of the word index g with bit log2(sh) of the bit position in every lane whose
// mask M is the positions where that bit is 0 (lanes with M = 0 are left alone).
inline void exchange(U32x4 (&X)[8], int kb, int sh, U32x4 M) {
  for (int g = 0; g < 8; ++g)
    if (!(g & kb)) {
      const U32x4 x = ((X[g] >> sh) ^ X[g | kb]) & M;
      X[g | kb] ^= x;
      X[g] ^= x << sh;
    }
}

// Stores half `half` of xy (low word: the even k, i.e. r, h or i>>1 = 0; high: the next k) of lane
// l = (t = l / B, w = l % B) for token 4t + s into its row slice out[4t + s].
template <int B>
inline void put_pair(uint8_t* const* out, int s, int l, U64x2 xy, int half) {
  const int t = l / B, w = l % B;
  uint8_t* row = out[4 * t + s];
  const uint64_t v = xy[half];
  if (B == 4) std::memcpy(row + 8 * w, &v, 8);                    // group w>>1, words 2(w&1) + r
  else if (w < B - (B & 1)) std::memcpy(row + 4 * B * w, &v, 8);  // w=2 plane: group w, words h
  else if (B == 1) std::memcpy(row, &v, 8);                       // w=1 plane: word 0 of groups 0, 1
  else {                                                          // w=1 plane: word 2 of groups 0, 1
    const uint32_t x = uint32_t(v), y = uint32_t(v >> 32);
    std::memcpy(row + 8, &x, 4);
    std::memcpy(row + 20, &y, 4);
  }
}

// Unpacks a whole 16-token block of d coordinates (b = B) into the rows out[0..16).
template <int B>
void quad_block_to_rows(const uint8_t* block, int d, uint8_t* const* rows) {
  for (int j = 0; j < d / 64; ++j) {
    const uint8_t* in = block + size_t(128) * B * j;
    uint8_t* out[16];
    for (int i = 0; i < 16; ++i) out[i] = rows[i] + size_t(8) * B * j;  // row group 2j
#pragma GCC unroll 4
    for (int v = 0; v < B; ++v) {  // lanes 4v..4v+3: each column of 4 lanes is transposed alone
      U32x4 X[8];
      for (int g = 0; g < 8; ++g) std::memcpy(&X[g], in + 16 * (B * g + v), 16);  // little-endian words
      const U32x4 all = ~U32x4{};
      if (B == 4) {
        exchange(X, 1, 4, all & 0x0F0F0F0Fu);
        exchange(X, 2, 8, all & 0x00FF00FFu);
        exchange(X, 4, 16, all & 0x0000FFFFu);
      } else {
        if (B & 1) {
          U32x4 w1;  // the w=1 plane's lanes
          for (int e = 0; e < 4; ++e) w1[e] = (4 * v + e) % B == B - 1 ? ~0u : 0u;
          exchange(X, 1, 1, w1 & 0x55555555u);
        }
        exchange(X, 1, 2, all & 0x33333333u);
        exchange(X, 2, 4, all & 0x0F0F0F0Fu);
        exchange(X, 4, 8, all & 0x00FF00FFu);
      }
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {  // word k = s + 4r (b = 4) or 2s + (h or i>>1) (b < 4)
        const U32x4 a = X[B == 4 ? s : 2 * s], c = X[B == 4 ? s + 4 : 2 * s + 1];
        const U32x4 lo = {a[0], c[0], a[1], c[1]}, hi = {a[2], c[2], a[3], c[3]};
#pragma GCC unroll 4
        for (int e = 0; e < 4; ++e) put_pair<B>(out, s, 4 * v + e, U64x2(e < 2 ? lo : hi), e & 1);
      }
    }
  }
}

void quad_block_to_rows(const uint8_t* block, int d, int b, uint8_t* const* rows) {
  switch (b) {
    case 1: quad_block_to_rows<1>(block, d, rows); break;
    case 2: quad_block_to_rows<2>(block, d, rows); break;
    case 3: quad_block_to_rows<3>(block, d, rows); break;
    default: quad_block_to_rows<4>(block, d, rows); break;
  }
}

}  // namespace

void gather_rows(const uint8_t* pool, const KvPageLayout& L, const KvSeqView& s, int head, int pos, int n,
                 uint8_t* rows) {
  const int pt = int(L.page_tokens), b = int(L.quad_bits);
  const size_t cb = L.codes_bytes;
  if (!b) {
    for (int t = pos; t < pos + n;) {
      const int end = std::min(pos + n, (t / pt + 1) * pt);
      std::memcpy(rows + size_t(t - pos) * cb, token_bytes(pool, L, s, head, t).codes, size_t(end - t) * cb);
      t = end;
    }
    return;
  }
  const int d = int(cb) * 8 / b;
  thread_local std::vector<uint8_t> tmp;
  for (int t0 = pos & ~15; t0 < pos + n; t0 += 16) {  // blocks never straddle pages (pt % 16 == 0)
    const int lo = std::max(t0, pos), hi = std::min(t0 + 16, pos + n);
    const bool whole = lo == t0 && hi == t0 + 16;  // whole block: straight into the output rows
    if (!whole) tmp.resize(16 * cb);
    uint8_t* base = whole ? rows + size_t(t0 - pos) * cb : tmp.data();
    uint8_t* out[16];
    for (int i = 0; i < 16; ++i) out[i] = base + size_t(i) * cb;
    quad_block_to_rows(token_bytes(pool, L, s, head, t0).codes, d, b, out);
    if (!whole) std::memcpy(rows + size_t(lo - pos) * cb, &tmp[size_t(lo - t0) * cb], size_t(hi - lo) * cb);
  }
}

}  // namespace tq::kv
