// Packing: fast path bit-identical to the layout.h reference, exact round trip, exact size.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "turboquant/layout.h"
#include "turboquant/pack.h"

namespace {

TEST(Pack, RoundTripAndMatchesReferenceForEveryWidth) {
  std::mt19937 rng(std::random_device{}());
  for (int b = 1; b <= 8; ++b)
    for (uint32_t d : {1u, 2u, 7u, 8u, 31u, 32u, 33u, 63u, 64u, 100u, 128u, 255u, 300u, 1536u}) {
      std::vector<uint8_t> codes(d), back(d);
      for (auto& c : codes) c = uint8_t(rng() & ((1u << b) - 1u));
      const uint32_t nb = tq::packed_bytes(d, b);
      ASSERT_EQ(nb, (d * b + 7) / 8);
      std::vector<uint8_t> fast(nb + 8, 0xAB), ref(nb + 8, 0xAB);  // guard bytes must survive
      tq::pack_codes(codes.data(), d, b, fast.data());
      tq::pack_codes_ref(codes.data(), d, b, ref.data());
      ASSERT_EQ(fast, ref) << "b=" << b << " d=" << d;
      for (uint32_t i = nb; i < nb + 8; ++i) ASSERT_EQ(fast[i], 0xAB);
      tq::unpack_codes(fast.data(), d, b, back.data());
      ASSERT_EQ(back, codes) << "b=" << b << " d=" << d;
      for (uint32_t i = 0; i < d; ++i) ASSERT_EQ(tq::unpack_code_ref(fast.data(), d, b, i), codes[i]);
    }
}

TEST(Pack, GroupPlanesGiveNibbleSelectors) {
  // The property the GPU relies on: for b = 3, (L_k >> 2h) & 0x33333333 | shifted(H) & 0x44444444
  // yields codes 16k + 2m + h in nibble m.
  std::mt19937 rng(7);
  std::vector<uint8_t> codes(32);
  for (auto& c : codes) c = uint8_t(rng() & 7);
  uint8_t p[12];
  tq::pack_codes(codes.data(), 32, 3, p);
  uint32_t w[3];
  for (int i = 0; i < 3; ++i) w[i] = uint32_t(p[4 * i]) | p[4 * i + 1] << 8 | p[4 * i + 2] << 16 | uint32_t(p[4 * i + 3]) << 24;
  for (int k = 0; k < 2; ++k)
    for (int h = 0; h < 2; ++h) {
      const int s = 2 - (2 * k + h);
      const uint32_t hi = s >= 0 ? w[2] << s : w[2] >> -s;
      const uint32_t sel = ((w[k] >> (2 * h)) & 0x33333333u) | (hi & 0x44444444u);
      for (int m = 0; m < 8; ++m) EXPECT_EQ((sel >> (4 * m)) & 0xF, codes[16 * k + 2 * m + h]);
    }
}

// V in token quads (layout.h): a block of 16 tokens is a permutation of its rows' bits (quad_unpos
// inverts quad_pos); a token's put touches only its own bits (any order, any prior contents); every
// code reads back.
TEST(Pack, QuadBlocksArePermutationsOfTheirRows) {
  std::mt19937 rng(std::random_device{}());
  for (int b = 1; b <= 4; ++b)
    for (uint32_t d : {64u, 128u, 256u}) {
      SCOPED_TRACE(testing::Message() << "b=" << b << " d=" << d);
      ASSERT_TRUE(tq::quad_fits(d, b));
      const size_t bytes = size_t(2) * d * b;
      ASSERT_EQ(bytes, 16 * size_t(tq::packed_bytes(d, b)));
      std::vector<uint8_t> codes(16 * size_t(d));
      for (auto& c : codes) c = uint8_t(rng() & ((1u << b) - 1u));
      std::vector<uint8_t> a(bytes), z(bytes, 0);
      for (auto& x : a) x = uint8_t(rng());  // garbage: every bit must be overwritten
      std::vector<int> order(16);
      for (int i = 0; i < 16; ++i) order[size_t(i)] = i;
      std::shuffle(order.begin(), order.end(), rng);
      for (int tok : order) tq::quad_put_token(&codes[size_t(tok) * d], d, b, tok, a.data());
      for (int tok = 0; tok < 16; ++tok) tq::quad_put_token(&codes[size_t(tok) * d], d, b, tok, z.data());
      ASSERT_EQ(a, z);
      for (int tok = 0; tok < 16; ++tok)
        for (uint32_t x = 0; x < d; ++x) ASSERT_EQ(tq::quad_get_code(a.data(), b, tok, int(x)), codes[tok * d + x]);
      // Distinct (token, coordinate) pairs land on distinct (group, code) slots, all of them used.
      std::vector<int> hits(size_t(d / 2) * 32, 0);
      for (int tok = 0; tok < 16; ++tok)
        for (uint32_t x = 0; x < d; ++x) {
          const tq::QuadPos q = tq::quad_pos(b, tok, int(x));
          ASSERT_LT(q.group, int(d / 2));
          ASSERT_LT(q.code, 32);
          ++hits[size_t(q.group) * 32 + size_t(q.code)];
          const tq::QuadTokCoord back = tq::quad_unpos(b, q.group, q.code);
          ASSERT_EQ(back.tok, tok);
          ASSERT_EQ(back.coord, int(x));
        }
      for (int h : hits) ASSERT_EQ(h, 1);
      // Rewriting one token changes its codes only.
      std::vector<uint8_t> other(d);
      for (auto& c : other) c = uint8_t(rng() & ((1u << b) - 1u));
      tq::quad_put_token(other.data(), d, b, 5, a.data());
      for (int tok = 0; tok < 16; ++tok)
        for (uint32_t x = 0; x < d; ++x)
          ASSERT_EQ(tq::quad_get_code(a.data(), b, tok, int(x)), tok == 5 ? other[x] : codes[tok * d + x]);
    }
  EXPECT_FALSE(tq::quad_fits(96, 3));
  EXPECT_FALSE(tq::quad_fits(128, 5));
}

}  // namespace
