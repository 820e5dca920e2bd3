// src/core/pack.cpp — group-plane packing (layout.h), a word at a time.
#include "turboquant/pack.h"

#include <cstring>
#include <initializer_list>

#include "turboquant/layout.h"

namespace tq {
namespace {

// Shift of code c inside a plane of width w, and its word, precomputed once.
struct PlaneTables {
  uint8_t shift[9][32];
  uint8_t word[9][32];
  PlaneTables() {
    for (int w : {1, 2, 4, 8})
      for (int c = 0; c < 32; ++c) {
        int wd = 0;
        shift[w][c] = uint8_t(plane_pos(w, c, &wd));
        word[w][c] = uint8_t(wd);
      }
  }
};
const PlaneTables& tables() {
  static const PlaneTables t;
  return t;
}

inline void store_le32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v); p[1] = uint8_t(v >> 8); p[2] = uint8_t(v >> 16); p[3] = uint8_t(v >> 24);
}
inline uint32_t load_le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

}  // namespace

void pack_codes(const uint8_t* codes, uint32_t d, int b, uint8_t* out) {
  if (b == 0) return;
  const PlaneTables& T = tables();
  const uint32_t groups = d / kGroup;
  int w[3] = {0, 0, 0};
  const int np = plane_widths(b, w);
  for (uint32_t g = 0; g < groups; ++g) {
    const uint8_t* cg = codes + g * kGroup;
    uint8_t* gw = out + 4u * b * g;
    int word_base = 0, off = 0;
    for (int p = 0; p < np; ++p) {
      uint32_t words[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const uint32_t mask = (1u << w[p]) - 1u;
      for (int c = 0; c < kGroup; ++c) words[T.word[w[p]][c]] |= ((uint32_t(cg[c]) >> off) & mask) << T.shift[w[p]][c];
      for (int k = 0; k < w[p]; ++k) store_le32(gw + 4 * (word_base + k), words[k]);
      word_base += w[p];
      off += w[p];
    }
  }
  // Tail: dense LSB-first bitstream.
  const uint32_t rem = d - groups * kGroup;
  if (rem) {
    uint8_t* tail = out + 4u * b * groups;
    std::memset(tail, 0, packed_bytes(rem, b));
    uint64_t acc = 0;
    int nbits = 0;
    uint32_t pos = 0;
    for (uint32_t i = 0; i < rem; ++i) {
      acc |= uint64_t(codes[groups * kGroup + i] & ((1u << b) - 1u)) << nbits;
      nbits += b;
      while (nbits >= 8) { tail[pos++] = uint8_t(acc); acc >>= 8; nbits -= 8; }
    }
    if (nbits > 0) tail[pos] = uint8_t(acc);
  }
}

void unpack_codes(const uint8_t* packed, uint32_t d, int b, uint8_t* codes) {
  if (b == 0) { std::memset(codes, 0, d); return; }
  const PlaneTables& T = tables();
  const uint32_t groups = d / kGroup;
  int w[3] = {0, 0, 0};
  const int np = plane_widths(b, w);
  for (uint32_t g = 0; g < groups; ++g) {
    uint8_t* cg = codes + g * kGroup;
    const uint8_t* gw = packed + 4u * b * g;
    std::memset(cg, 0, kGroup);
    int word_base = 0, off = 0;
    for (int p = 0; p < np; ++p) {
      uint32_t words[8];
      for (int k = 0; k < w[p]; ++k) words[k] = load_le32(gw + 4 * (word_base + k));
      const uint32_t mask = (1u << w[p]) - 1u;
      for (int c = 0; c < kGroup; ++c) cg[c] |= uint8_t(((words[T.word[w[p]][c]] >> T.shift[w[p]][c]) & mask) << off);
      word_base += w[p];
      off += w[p];
    }
  }
  const uint32_t rem = d - groups * kGroup;
  if (rem) {
    const uint8_t* tail = packed + 4u * b * groups;
    const uint32_t nbytes = packed_bytes(rem, b);
    uint64_t acc = 0;
    int nbits = 0;
    uint32_t pos = 0;
    for (uint32_t i = 0; i < rem; ++i) {
      while (nbits < b) { acc |= uint64_t(pos < nbytes ? tail[pos] : 0) << nbits; ++pos; nbits += 8; }
      codes[groups * kGroup + i] = uint8_t(acc & ((1u << b) - 1u));
      acc >>= b;
      nbits -= b;
    }
  }
}

}  // namespace tq
