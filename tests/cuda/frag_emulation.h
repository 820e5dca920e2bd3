// Shared by the CPU emulations of the v3 decode kernel's fragments (test_decode_frag.cpp,
// test_decode_frag_parts.cpp): random packed rows, and the checks that one lane's mma fragment
// registers hold the expected table entries.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "turboquant/layout.h"

namespace frag_test {

// 16 token rows of packed codes (D coordinates at BITS bits), plus the codes themselves.
struct Rows {
  std::vector<std::vector<uint8_t>> codes;
  std::vector<std::vector<uint32_t>> words;
};
inline Rows random_rows(int D, int bits, std::mt19937& rng) {
  Rows r;
  for (int tok = 0; tok < 16; ++tok) {
    std::vector<uint8_t> c(D);
    for (auto& x : c) x = uint8_t(rng() % (1u << bits));
    std::vector<uint8_t> packed(tq::packed_bytes(D, bits));
    tq::pack_codes_ref(c.data(), D, bits, packed.data());
    for (int i = 0; i < D; ++i) EXPECT_EQ(tq::unpack_code_ref(packed.data(), D, bits, i), c[i]);
    std::vector<uint32_t> w(packed.size() / 4);
    std::memcpy(w.data(), packed.data(), packed.size());
    r.codes.push_back(c);
    r.words.push_back(w);
  }
  return r;
}

// The coordinates a fragment order reached (over every lane and slot) must be 0 .. D - 1, each once.
inline void expect_permutation(const std::set<int>& dims, int D, const char* order) {
  EXPECT_EQ(int(dims.size()), D) << order << " is not a permutation";
  if (dims.empty()) return;
  EXPECT_EQ(*dims.begin(), 0) << order;
  EXPECT_EQ(*dims.rbegin(), D - 1) << order;
}

inline uint16_t lo16(uint32_t x) { return uint16_t(x & 0xFFFF); }
inline uint16_t hi16(uint32_t x) { return uint16_t(x >> 16); }

// The V^T fragment of one lane (a0, a1: tokens 2t, 2t+1 of dims r0 / r1; a2, a3: tokens 2t+8,
// 2t+9) must hold the table entries val(token, dim).
template <class Val>
void expect_v_fragment(uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, int t, int r0, int r1, Val val, int lane,
                       int mt) {
  ASSERT_EQ(lo16(a0), val(2 * t, r0)) << "lane " << lane << " mt " << mt;
  ASSERT_EQ(hi16(a0), val(2 * t + 1, r0));
  ASSERT_EQ(lo16(a1), val(2 * t, r1));
  ASSERT_EQ(hi16(a1), val(2 * t + 1, r1));
  ASSERT_EQ(lo16(a2), val(2 * t + 8, r0));
  ASSERT_EQ(hi16(a2), val(2 * t + 9, r0));
  ASSERT_EQ(lo16(a3), val(2 * t + 8, r1));
  ASSERT_EQ(hi16(a3), val(2 * t + 9, r1));
}

// The f16 K fragment of one lane (a0 / a2: row g, coordinates d[0..1] / d[2..3]; a1 / a3: row
// g + 8) must hold the table entries val(row, coordinate).
template <class Val>
void expect_k_fragment(const uint32_t (&a)[4], int g, const int (&d)[4], Val val, int lane, int kc) {
  ASSERT_EQ(lo16(a[0]), val(g, d[0])) << "lane " << lane << " kc " << kc;
  ASSERT_EQ(hi16(a[0]), val(g, d[1])) << "lane " << lane << " kc " << kc;
  ASSERT_EQ(lo16(a[2]), val(g, d[2])) << "lane " << lane << " kc " << kc;
  ASSERT_EQ(hi16(a[2]), val(g, d[3])) << "lane " << lane << " kc " << kc;
  ASSERT_EQ(lo16(a[1]), val(g + 8, d[0])) << "lane " << lane << " kc " << kc;
  ASSERT_EQ(hi16(a[1]), val(g + 8, d[1])) << "lane " << lane << " kc " << kc;
  ASSERT_EQ(lo16(a[3]), val(g + 8, d[2])) << "lane " << lane << " kc " << kc;
  ASSERT_EQ(hi16(a[3]), val(g + 8, d[3])) << "lane " << lane << " kc " << kc;
}

}  // namespace frag_test
