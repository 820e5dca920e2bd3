// The v3 decode kernel's code-to-fragment mappings (src/cuda/decode_frag.h), checked on the CPU
// against layout.h's reference packing: every lane of a warp is emulated, and each fp16 value it
// would hand to the tensor cores must be the table entry of the code at the coordinate that
// kdim / vdim (the order q is gathered in and the output scattered from) name. No GPU needed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "cuda/decode_frag.h"
#include "turboquant/layout.h"

namespace {

using namespace tq::cuda::frag;

// 16 token rows of packed codes (D coordinates at BITS bits), plus the codes themselves.
struct Rows {
  std::vector<std::vector<uint8_t>> codes;
  std::vector<std::vector<uint32_t>> words;
};
Rows random_rows(int D, int bits, std::mt19937& rng) {
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

uint16_t lo16(uint32_t x) { return uint16_t(x & 0xFFFF); }
uint16_t hi16(uint32_t x) { return uint16_t(x >> 16); }

template <int D, int BITS>
void check_tq() {
  SCOPED_TRACE(testing::Message() << "D=" << D << " bits=" << BITS);
  std::mt19937 rng(1234 + D * 8 + BITS);
  // Distinct fp16 bit patterns as table entries, so a wrong entry cannot pass by coincidence; a
  // 16-entry codebook is symmetric (entry 15 - i = -entry i), which the 4-bit lookup relies on.
  std::vector<uint16_t> h(1 << BITS);
  for (size_t i = 0; i < h.size(); ++i) h[i] = uint16_t(0xBC00 + 0x0101 * (i + 1) + (rng() & 0x30));
  if (BITS == 4)
    for (int i = 8; i < 16; ++i) h[i] = uint16_t(h[15 - i] ^ 0x8000u);
  const Shifts S;
  uint32_t tab[8];
  make_table(h.data(), int(h.size()), tab);
  const Rows R = random_rows(D, BITS, rng);
  auto val = [&](int tok, int dim) { return h[R.codes[tok][dim]]; };

  std::set<int> kd, vd;
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    // K: A fragment of k-chunk kc from rows g and g + 8.
    for (int kc = 0; kc < D / 16; ++kc) {
      const Sel s0 = prep<BITS>(sel_word<BITS>(R.words[g].data(), t * (D / 32) + (kc >> 1)), S);
      const Sel s1 = prep<BITS>(sel_word<BITS>(R.words[g + 8].data(), t * (D / 32) + (kc >> 1)), S);
      uint32_t a0, a1, a2, a3;
      lookup_half2<BITS>(tab, (kc & 1) ? upper(s0, S) : s0, a0, a2);
      lookup_half2<BITS>(tab, (kc & 1) ? upper(s1, S) : s1, a1, a3);
      const int d0 = kdim<D, BITS>(t, kc, 0), d1 = kdim<D, BITS>(t, kc, 1);
      const int d2 = kdim<D, BITS>(t, kc, 2), d3 = kdim<D, BITS>(t, kc, 3);
      ASSERT_EQ(lo16(a0), val(g, d0)) << "lane " << lane << " kc " << kc;
      ASSERT_EQ(hi16(a0), val(g, d1));
      ASSERT_EQ(lo16(a2), val(g, d2));
      ASSERT_EQ(hi16(a2), val(g, d3));
      ASSERT_EQ(lo16(a1), val(g + 8, d0));
      ASSERT_EQ(hi16(a3), val(g + 8, d3));
      if (g == 0) for (int jj = 0; jj < 4; ++jj) kd.insert(kdim<D, BITS>(t, kc, jj));
    }
    // V: A fragment of m-tile mt (rows = dims g / g+8, k = tokens 2t, 2t+1, 2t+8, 2t+9).
    for (int mt = 0; mt < D / 16; ++mt) {
      const int sw = g * (D / 64) + (mt >> 2), e = (mt >> 1) & 1, hf = mt & 1;
      auto sel = [&](int tok) { return sel_word<BITS>(R.words[tok].data(), sw); };
      const Sel ab = prep<BITS>(merge_sel(sel(2 * t), sel(2 * t + 1), e, S), S);
      const Sel cd = prep<BITS>(merge_sel(sel(2 * t + 8), sel(2 * t + 9), e, S), S);
      uint32_t a0, a1, a2, a3;
      lookup_half2<BITS>(tab, hf ? upper(ab, S) : ab, a0, a1);
      lookup_half2<BITS>(tab, hf ? upper(cd, S) : cd, a2, a3);
      const int r0 = vdim<D, BITS>(g, mt, 0), r1 = vdim<D, BITS>(g, mt, 1);
      ASSERT_EQ(lo16(a0), val(2 * t, r0)) << "lane " << lane << " mt " << mt;
      ASSERT_EQ(hi16(a0), val(2 * t + 1, r0));
      ASSERT_EQ(lo16(a1), val(2 * t, r1));
      ASSERT_EQ(hi16(a1), val(2 * t + 1, r1));
      ASSERT_EQ(lo16(a2), val(2 * t + 8, r0));
      ASSERT_EQ(hi16(a2), val(2 * t + 9, r0));
      ASSERT_EQ(lo16(a3), val(2 * t + 8, r1));
      ASSERT_EQ(hi16(a3), val(2 * t + 9, r1));
      if (t == 0) { vd.insert(r0); vd.insert(r1); }
    }
  }
  // K as int8 (mma.m16n8k32.s8): a0 / a2 = row g, k 4t..4t+3 / 16+4t..; a1 / a3 = row g + 8.
  uint32_t tab8[4] = {0, 0, 0, 0};
  std::vector<uint8_t> e8(1 << BITS);
  for (size_t i = 0; i < e8.size(); ++i) {
    e8[i] = uint8_t(0x11 * (i + 1) + (rng() & 0x0F));  // distinct bytes
    tab8[i / 4] |= uint32_t(e8[i]) << (8 * (i % 4));
  }
  std::set<int> kd8;
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int kc = 0; kc < D / 32; ++kc) {
      const uint32_t s0 = sel_word<BITS>(R.words[g].data(), t * (D / 32) + kc);
      const uint32_t s1 = sel_word<BITS>(R.words[g + 8].data(), t * (D / 32) + kc);
      const uint32_t a[4] = {lookup_i8<BITS>(tab8, s0), lookup_i8<BITS>(tab8, s1), lookup_i8<BITS>(tab8, s0 >> 16),
                             lookup_i8<BITS>(tab8, s1 >> 16)};
      for (int j = 0; j < 8; ++j) {
        const int d = kdim8<D, BITS>(t, kc, j);
        const uint32_t r0 = a[j < 4 ? 0 : 2], r1 = a[j < 4 ? 1 : 3];
        ASSERT_EQ(uint8_t(r0 >> (8 * (j % 4))), e8[R.codes[g][d]]) << "int8 K: lane " << lane << " kc " << kc << " j " << j;
        ASSERT_EQ(uint8_t(r1 >> (8 * (j % 4))), e8[R.codes[g + 8][d]]) << "int8 K: lane " << lane << " kc " << kc;
        if (g == 0) kd8.insert(d);
      }
    }
  }
  EXPECT_EQ(int(kd8.size()), D) << "kdim8 is not a permutation";
  EXPECT_EQ(int(kd.size()), D) << "kdim is not a permutation";
  EXPECT_EQ(int(vd.size()), D) << "vdim is not a permutation";
  EXPECT_EQ(*kd.rbegin(), D - 1);
  EXPECT_EQ(*vd.rbegin(), D - 1);
}

TEST(CudaDecodeFrag, TurboQuantFragmentsMatchReferenceUnpacking) {
  check_tq<64, 2>(); check_tq<64, 3>(); check_tq<64, 4>();
  check_tq<128, 2>(); check_tq<128, 3>(); check_tq<128, 4>();
  check_tq<256, 2>(); check_tq<256, 3>(); check_tq<256, 4>();
}

// fp16 pass-through: K fragments are 16-byte loads of lane t's dims, V fragments movmatrix
// transposes of the same loads (lane (g', t') provides row g', columns 2t', 2t'+1 of each 8x8
// block; lane (g, t) receives row g, columns 2t, 2t+1 of the transpose).
template <int D>
void check_fp16() {
  SCOPED_TRACE(testing::Message() << "fp16 D=" << D);
  std::set<int> kd, vd;
  auto chunk = [](int tt, int i) { return (i + (tt >> 1)) % (D / 32); };
  for (int t = 0; t < 4; ++t)
    for (int kc = 0; kc < D / 16; ++kc) {
      // the kernel's address: element (D/4) t + 8 u + 2 * word, word = 2 (kc % 2) + {0: a0, 1: a2}
      const int u = chunk(t, kc >> 1);
      EXPECT_EQ((kdim<D, 0>(t, kc, 0)), (D / 4) * t + 8 * u + 2 * (2 * (kc & 1)));
      EXPECT_EQ((kdim<D, 0>(t, kc, 1)), (kdim<D, 0>(t, kc, 0) + 1));
      EXPECT_EQ((kdim<D, 0>(t, kc, 2)), (D / 4) * t + 8 * u + 2 * (2 * (kc & 1) + 1));
      EXPECT_EQ((kdim<D, 0>(t, kc, 3)), (kdim<D, 0>(t, kc, 2) + 1));
      for (int jj = 0; jj < 4; ++jj) kd.insert(kdim<D, 0>(t, kc, jj));
    }
  for (int g = 0; g < 8; ++g)
    for (int mt = 0; mt < D / 16; ++mt)
      for (int r = 0; r < 2; ++r) {
        // block: load i = mt / 2, word j = 2 (mt % 2) + r; transposed row g = source column g,
        // provided by lane t' = g / 2 as element g % 2 of that word.
        const int i = mt >> 1, j = 2 * (mt & 1) + r, tp = g >> 1;
        EXPECT_EQ((vdim<D, 0>(g, mt, r)), (D / 4) * tp + 8 * chunk(tp, i) + 2 * j + (g & 1));
        vd.insert(vdim<D, 0>(g, mt, r));
      }
  EXPECT_EQ(int(kd.size()), D);
  EXPECT_EQ(int(vd.size()), D);
}

TEST(CudaDecodeFrag, Fp16FragmentOrdersArePermutations) {
  check_fp16<64>();
  check_fp16<128>();
  check_fp16<256>();
}

TEST(CudaDecodeFrag, ShiftsAsMultiplications) {
  const Shifts S;
  for (uint32_t x : {0u, 1u, 0x80000001u, 0xDEADBEEFu, 0xFFFFFFFFu}) {
    EXPECT_EQ(x * S.shl4, x << 4);
    EXPECT_EQ(mulhi(x, S.shr3), x >> 3); EXPECT_EQ(mulhi(x, S.shr4), x >> 4); EXPECT_EQ(mulhi(x, S.shr16), x >> 16);
  }
}

TEST(CudaDecodeFrag, Int8TableIsTheScaledCodebook) {
  // Entries round(c * 127 / max|c|): the largest magnitude maps to +-127, the scale maps back within
  // half a step, and symmetric codebooks stay symmetric (the int8 scores of +-x cancel exactly).
  const double c[8] = {-2.152, -1.344, -0.756, -0.245, 0.245, 0.756, 1.344, 2.152};
  uint32_t tab8[4];
  const float s = make_table_i8(c, 8, tab8);
  EXPECT_NEAR(s, 2.152 / 127, 1e-7);
  for (int i = 0; i < 8; ++i) {
    const int v = int8_t(uint8_t(tab8[i / 4] >> (8 * (i % 4))));
    EXPECT_LE(std::abs(v * s - c[i]), 0.5 * s + 1e-9) << i;
    const int w = int8_t(uint8_t(tab8[(7 - i) / 4] >> (8 * ((7 - i) % 4))));
    EXPECT_EQ(v, -w) << i;
  }
  EXPECT_EQ(int8_t(uint8_t(tab8[1] >> 24)), 127);
  EXPECT_EQ(tab8[2], 0u);
}

TEST(CudaDecodeFrag, RotationHelper) {
  for (uint32_t x : {1u, 0x80000001u, 0xDEADBEEFu})
    for (int n = -3; n < 35; ++n) {
      const int m = ((n % 32) + 32) % 32;
      EXPECT_EQ(rotr(x, n), m ? (x >> m) | (x << (32 - m)) : x) << n;
    }
}

TEST(CudaDecodeFrag, PrmtEmulationMatchesPtxSemantics) {
  // Plain byte selection, sign replication (nibble bit 3), upper selector bits ignored.
  EXPECT_EQ(prmt(0x33221100u, 0x77665544u, 0x5140u), 0x55114400u);
  EXPECT_EQ(prmt(0x33221100u, 0x77665544u, 0x7362u), 0x77336622u);
  EXPECT_EQ(prmt(0x0000FF00u, 0u, 0x1010u), 0xFF00FF00u);
  EXPECT_EQ(prmt(0x00800000u, 0u, 0xFFFF0008u | 0x0A00u), 0x00FF0000u);
}

}  // namespace
