// The v3 decode kernel's code-to-fragment mappings (src/cuda/decode_frag.h) of the single-part
// codecs (TurboQuant mse rows and token quads, the wide fp16-table codecs, fp16 pass-through) and
// the bit tricks they rest on, checked on the CPU against layout.h's reference packing: every lane
// of a warp is emulated, and each value it would hand to the tensor cores must be the table entry
// of the code at the coordinate that kdim / vdim (the order q is gathered in and the output
// scattered from) name. Fractional, prod and D = 64 fractional codecs: test_decode_frag_parts.cpp.
// No GPU needed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/decode_frag.h"
#include "cuda/decode_v3_params.h"
#include "frag_emulation.h"
#include "turboquant/codec.h"
#include "turboquant/half.h"
#include "turboquant/layout.h"
#include "turboquant/tq_codec.h"

namespace {

using namespace tq::cuda::frag;
using namespace frag_test;

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
      expect_v_fragment(a0, a1, a2, a3, t, r0, r1, val, lane, mt);
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
        ASSERT_EQ(kpos8<BITS>(d), 8 * (t * (D / 32) + kc) + j) << "kpos8 is not kdim8's inverse: d " << d;
        const uint32_t r0 = a[j < 4 ? 0 : 2], r1 = a[j < 4 ? 1 : 3];
        ASSERT_EQ(uint8_t(r0 >> (8 * (j % 4))), e8[R.codes[g][d]]) << "int8 K: lane " << lane << " kc " << kc << " j " << j;
        ASSERT_EQ(uint8_t(r1 >> (8 * (j % 4))), e8[R.codes[g + 8][d]]) << "int8 K: lane " << lane << " kc " << kc;
        if (g == 0) kd8.insert(d);
      }
    }
  }
  expect_permutation(kd8, D, "kdim8");
  expect_permutation(kd, D, "kdim");
  expect_permutation(vd, D, "vdim");
}

// V in token quads (QV kernel): lane (g, t)'s selector word i of virtual group lane + 32 j gives,
// through one int8 prmt per half, tokens 4t..4t+3 at dims 16 mt + g (low half) and + 8 (high).
template <int D, int BITS>
void check_quad() {
  SCOPED_TRACE(testing::Message() << "quad D=" << D << " bits=" << BITS);
  std::mt19937 rng(99 + D + BITS);
  std::vector<uint8_t> codes(16 * D), packed(2 * D * BITS);
  for (auto& c : codes) c = uint8_t(rng() % (1u << BITS));
  pack_quad_block(codes.data(), D, BITS, packed.data());
  std::vector<uint32_t> words(packed.size() / 4);
  std::memcpy(words.data(), packed.data(), packed.size());
  uint32_t tab8[4] = {0, 0, 0, 0};
  std::vector<uint8_t> e8(1 << BITS);
  for (size_t i = 0; i < e8.size(); ++i) {
    e8[i] = uint8_t(0x11 * (i + 1) + (rng() & 0x0F));
    tab8[i / 4] |= uint32_t(e8[i]) << (8 * (i % 4));
  }
  std::set<std::pair<int, int>> seen;
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int mt = 0; mt < D / 16; ++mt) {
      const uint32_t s = sel_in_group<BITS>(words.data() + BITS * (lane + 32 * (mt >> 2)), mt & 3);
      const uint32_t a[2] = {lookup_i8<BITS>(tab8, s), lookup_i8<BITS>(tab8, s >> 16)};
      for (int r = 0; r < 2; ++r)
        for (int sl = 0; sl < 4; ++sl) {
          const int tok = 4 * t + sl, dim = 16 * mt + g + 8 * r;
          ASSERT_EQ(uint8_t(a[r] >> (8 * sl)), e8[codes[tok * D + dim]]) << "lane " << lane << " mt " << mt;
          seen.insert({tok, dim});
        }
    }
  }
  EXPECT_EQ(int(seen.size()), 16 * D) << "quad fragments do not cover the block";
}

TEST(CudaDecodeFrag, QuadVFragmentsMatchTheirCodes) {
  check_quad<64, 2>(); check_quad<64, 3>(); check_quad<128, 2>(); check_quad<128, 3>(); check_quad<128, 4>();
  check_quad<256, 3>();
  // K rows of the QV kernel: rows 2t, 2t+8, 2t+1, 2t+9 (the k slots of lane t after movmatrix) are
  // tokens 4t..4t+3; rows g, g + 8 are tokens 2g, 2g + 1.
  std::set<int> toks;
  for (int rho = 0; rho < 16; ++rho) toks.insert(quad_row_token(rho));
  EXPECT_EQ(int(toks.size()), 16);
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(quad_row_token(2 * t), 4 * t);
    EXPECT_EQ(quad_row_token(2 * t + 8), 4 * t + 1);
    EXPECT_EQ(quad_row_token(2 * t + 1), 4 * t + 2);
    EXPECT_EQ(quad_row_token(2 * t + 9), 4 * t + 3);
  }
  for (int g = 0; g < 8; ++g) EXPECT_EQ(quad_row_token(g + 8), quad_row_token(g) + 1);
}

TEST(CudaDecodeFrag, TurboQuantFragmentsMatchReferenceUnpacking) {
  check_tq<64, 1>(); check_tq<64, 2>(); check_tq<64, 3>(); check_tq<64, 4>();
  check_tq<128, 1>(); check_tq<128, 2>(); check_tq<128, 3>(); check_tq<128, 4>();
  check_tq<256, 1>(); check_tq<256, 2>(); check_tq<256, 3>(); check_tq<256, 4>();
}

// Wide codecs tq5..tq8 (shared-memory fp16 tables, f16 mma for QK^T and PV): the fragments built
// by wide_k_frag / wide_v_frag from the lane's runs must hold the table entries of the codes at
// kdim / vdim, and both orders must be permutations.
template <int D, int BITS>
void check_wide() {
  SCOPED_TRACE(testing::Message() << "wide D=" << D << " bits=" << BITS);
  std::mt19937 rng(4321 + D * 8 + BITS);
  std::vector<uint16_t> h(1 << BITS);  // distinct bit patterns: a wrong entry cannot pass by coincidence
  for (size_t i = 0; i < h.size(); ++i) h[i] = uint16_t(0x2000 + 37 * i + (rng() % 37));
  const Rows R = random_rows(D, BITS, rng);
  auto val = [&](int tok, int dim) { return h[R.codes[tok][dim]]; };
  auto row = [&](int tok) { return R.words[tok].data(); };
  std::set<int> kd, vd;
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int kc = 0; kc < D / 16; ++kc) {
      const WideRun<BITS> r0 = wide_k_run<D, BITS>(row(g), t, kc / 8), r1 = wide_k_run<D, BITS>(row(g + 8), t, kc / 8);
      uint32_t a[4];
      wide_k_frag<BITS>(h.data(), r0, r1, kc, a);
      int d[4];
      for (int jj = 0; jj < 4; ++jj) d[jj] = kdim<D, BITS>(t, kc, jj);
      expect_k_fragment(a, g, d, val, lane, kc);
      if (g == 0) for (int jj = 0; jj < 4; ++jj) kd.insert(d[jj]);
    }
    const WideRun<BITS> ra = wide_v_run<D, BITS>(row(2 * t), g), rb = wide_v_run<D, BITS>(row(2 * t + 1), g);
    const WideRun<BITS> rc = wide_v_run<D, BITS>(row(2 * t + 8), g), rd = wide_v_run<D, BITS>(row(2 * t + 9), g);
    for (int mt = 0; mt < D / 16; ++mt) {
      uint32_t a[4];
      wide_v_frag<BITS>(h.data(), ra, rb, rc, rd, mt, a);
      const int r0 = vdim<D, BITS>(g, mt, 0), r1 = vdim<D, BITS>(g, mt, 1);
      ASSERT_EQ(vdim_wide_rt(D, g, mt, 0), r0);  // the plan's order of the prod fold's rows (tq6p .. tq8p)
      ASSERT_EQ(vdim_wide_rt(D, g, mt, 1), r1);
      expect_v_fragment(a[0], a[1], a[2], a[3], t, r0, r1, val, lane, mt);
      if (t == 0) { vd.insert(r0); vd.insert(r1); }
    }
  }
  expect_permutation(kd, D, "kdim");
  expect_permutation(vd, D, "vdim");
}

TEST(CudaDecodeFrag, WideFragmentsMatchReferenceUnpacking) {
  check_wide<64, 5>(); check_wide<64, 6>(); check_wide<64, 7>(); check_wide<64, 8>();
  check_wide<128, 5>(); check_wide<128, 6>(); check_wide<128, 7>(); check_wide<128, 8>();
  check_wide<256, 5>(); check_wide<256, 6>(); check_wide<256, 7>(); check_wide<256, 8>();
}

// Every code of every run start the kernel uses (multiples of 8 inside a group, 16-code halves, whole
// groups), against layout.h's reference unpacking: the plane shifts of wide_run for all positions.
TEST(CudaDecodeFrag, WideRunsMatchReferenceUnpacking) {
  std::mt19937 rng(99);
  for (int bits = 5; bits <= 8; ++bits) {
    std::vector<uint8_t> c(32), packed(4 * bits);
    std::vector<uint32_t> w(bits);
    for (int rep = 0; rep < 20; ++rep) {
      for (auto& x : c) x = uint8_t(rng() % (1u << bits));
      tq::pack_codes_ref(c.data(), 32, bits, packed.data());
      std::memcpy(w.data(), packed.data(), packed.size());
      for (int c0 = 0; c0 < 32; c0 += 8) {
        const int n = c0 == 0 ? 32 : (c0 % 16 == 0 ? 16 : 8);
        for (int j = 0; j < n; ++j) {
          uint32_t got = 0;
          switch (bits) {
            case 5: got = wide_code(wide_run<5>(w.data(), c0), j); break;
            case 6: got = wide_code(wide_run<6>(w.data(), c0), j); break;
            case 7: got = wide_code(wide_run<7>(w.data(), c0), j); break;
            default: got = wide_code(wide_run<8>(w.data(), c0), j);
          }
          ASSERT_EQ(got, tq::unpack_code_ref(packed.data(), 32, bits, uint32_t(c0 + j))) << "bits " << bits << " c0 " << c0 << " j " << j;
        }
      }
    }
  }
}

TEST(CudaDecodeFrag, LaneMergeMatchesMergeSel) {
  const Shifts S;
  for (uint32_t a : {0x76543210u, 0xDEADBEEFu, 0x0F1E2D3Cu})
    for (uint32_t b : {0xFEDCBA98u, 0x12345678u})
      for (int e = 0; e < 2; ++e) EXPECT_EQ(merge_sel_lane(a, b, e), merge_sel(a, b, e, S)) << e;
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

TEST(CudaDecodeFrag, FmaSelectorsMatchTheRotatedOnes) {
  // The kernel builds selector words with multiplications where the word index is known at compile
  // time; with any plane bits, each must equal the rotation-based reference selector.
  const Shifts S;
  EXPECT_EQ(7u * S.shl1, 7u << 1); EXPECT_EQ(7u * S.shl2, 7u << 2);
  std::mt19937 rng(std::random_device{}());
  for (int rep = 0; rep < 2000; ++rep) {
    uint32_t gw[4];
    for (auto& w : gw) w = rng();
    if (rep == 0) gw[0] = gw[1] = gw[2] = gw[3] = 0xFFFFFFFFu;  // every bit that could wrap
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(sel_in_group_fma<1>(gw, i, S), sel_in_group<1>(gw, i));
      EXPECT_EQ(sel_in_group_fma<2>(gw, i, S), sel_in_group<2>(gw, i)) << std::hex << gw[0] << " " << gw[1] << " i " << i;
      EXPECT_EQ(sel_in_group_fma<3>(gw, i, S), sel_in_group<3>(gw, i)) << std::hex << gw[2] << " i " << i;
      EXPECT_EQ(sel_in_group_fma<4>(gw, i, S), sel_in_group<4>(gw, i));
    }
  }
  // K's per-lane selector words: a 256-coordinate row of 3-bit groups, every lane and k32-chunk.
  std::vector<uint32_t> row(256 * 3 / 32);
  for (auto& w : row) w = rng();
  for (int t = 0; t < 4; ++t) {
    for (int w = 0; w < 64 / 32; ++w) EXPECT_EQ((k_sel_word<64, 3>(row.data(), t, w, S)), sel_word<3>(row.data(), t * 2 + w));
    for (int w = 0; w < 128 / 32; ++w) EXPECT_EQ((k_sel_word<128, 3>(row.data(), t, w, S)), sel_word<3>(row.data(), t * 4 + w));
    for (int w = 0; w < 256 / 32; ++w) EXPECT_EQ((k_sel_word<256, 3>(row.data(), t, w, S)), sel_word<3>(row.data(), t * 8 + w));
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
