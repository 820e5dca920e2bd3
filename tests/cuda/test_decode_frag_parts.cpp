// The v3 decode kernel's fragment mappings of the multi-part codecs, checked on the CPU by
// emulating every lane (as test_decode_frag.cpp does for the single-part ones): fractional codecs
// (each k32-chunk and m-tile inside one part), the prod QJL signs and their fold, fractional prod,
// the kernel's compile-time row layouts and QJL matrices against the CPU codecs, and the arithmetic
// of the D = 64 fractional CUDA-core kernels (decode_frac64). No GPU needed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/decode_frac64.h"
#include "cuda/decode_frag.h"
#include "cuda/decode_qjl_mats.h"
#include "cuda/decode_v3_params.h"
#include "frag_emulation.h"
#include "turboquant/codec.h"
#include "turboquant/half.h"
#include "turboquant/layout.h"
#include "turboquant/tq_codec.h"

namespace {

using namespace tq::cuda::frag;
using namespace frag_test;

// Fractional codecs (frag::Groups<D, B, true>): part 0 = the first kHi groups at B + 1 bits, part
// 1 = the rest at B, packed one after the other. Each k32-chunk (kdim8_frac) and each V m-tile
// (vdim_frac) must stay inside one part and name the coordinates its lookups produce.
uint32_t sel_rt(int bits, const uint32_t* gw, int i) {
  switch (bits) {
    case 1: return sel_in_group<1>(gw, i);
    case 2: return sel_in_group<2>(gw, i);
    case 3: return sel_in_group<3>(gw, i);
    default: return sel_in_group<4>(gw, i);
  }
}
uint32_t merged_rt(int bits, const uint32_t* wa, const uint32_t* wb, int i, int e) {
  switch (bits) {
    case 1: return merged_sel<1>(wa, wb, i, e);
    case 2: return merged_sel<2>(wa, wb, i, e);
    case 3: return merged_sel<3>(wa, wb, i, e);
    default: return merged_sel<4>(wa, wb, i, e);
  }
}
Sel prep_rt(int bits, uint32_t s, const Shifts& S) { return bits == 4 ? prep<4>(s, S) : Sel{s, 0u}; }
void lookup_rt(int bits, const uint32_t* tab, Sel x, uint32_t& r0, uint32_t& r1) {
  if (bits == 4) lookup_half2<4>(tab, x, r0, r1); else lookup_half2<3>(tab, x, r0, r1);
}
uint32_t lookup_i8_rt(int bits, const uint32_t* tab8, uint32_t s) {
  return bits == 4 ? lookup_i8<4>(tab8, s) : lookup_i8<3>(tab8, s);
}

// PROD: the mse codes of the fractional prod tq(B+1).5p (its split is the rate B + 1's). B = 0
// (tq1.5p): part 1 has no mse codes; its groups get no lookups, but its k-chunks / m-tiles must still
// stay inside it and the orders be permutations (the fold fills those rows of O, the epilogue
// scatters them by vdim_frac).
template <int D, int B, bool PROD = false>
void check_frac() {
  using Gr = Groups<D, B, true, PROD>;
  SCOPED_TRACE(testing::Message() << "fractional D=" << D << " B=" << B << ".5" << (PROD ? " (mse of prod)" : ""));
  std::mt19937 rng(99 + D + B);
  const int m0 = 32 * Gr::kHi, m1 = D - m0;
  ASSERT_GT(m0, 0);
  {  // the compile-time split is the CPU codec's (CodecSpec::hi_fraction, TqCodec's layout)
    const std::string name = "tq" + std::to_string(PROD ? B + 1 : B) + (PROD ? ".5p" : ".5");
    const auto codec = tq::Codec::create(tq::parse_codec(name), D);
    const tq::TqLayout* L = codec->tq_layout();
    ASSERT_TRUE(L && L->n_parts == 2) << name;
    EXPECT_EQ(int(L->part[0].dim), m0) << name;
    EXPECT_EQ(int(L->part[0].mse_bits), B + 1) << name;
    EXPECT_EQ(int(L->part[1].mse_bits), B) << name;
    EXPECT_EQ(int(L->part[1].mse_offset), Gr::word(Gr::kHi) * 4) << name;
    EXPECT_EQ(int(L->codes_bytes), Gr::kCodesBytes + (PROD ? D / 8 : 0)) << name;
    if (PROD) EXPECT_EQ(int(L->part[0].qjl_offset), Gr::kCodesBytes) << name;  // the signs follow the mse codes
  }
  // Per part: fp16 table (distinct entries, symmetric at 16) and int8 table (distinct bytes).
  const Shifts S;
  uint32_t tab[2][8], tab8[2][4];
  std::vector<uint16_t> h[2];
  std::vector<uint8_t> e8[2];
  for (int p = 0; p < 2; ++p) {
    const int n = 1 << (p == 0 ? B + 1 : B);
    h[p].resize(n);
    for (int i = 0; i < n; ++i) h[p][i] = uint16_t(0xBC00 + 0x0101 * (i + 1) + 0x40 * p + (rng() & 0x30));
    if (n == 16) for (int i = 8; i < 16; ++i) h[p][i] = uint16_t(h[p][15 - i] ^ 0x8000u);
    make_table(h[p].data(), n, tab[p]);
    e8[p].resize(n);
    for (int i = 0; i < 4; ++i) tab8[p][i] = 0;
    for (int i = 0; i < n; ++i) {
      e8[p][i] = uint8_t(0x11 * (i + 1) + 3 * p + (rng() & 0x03));
      tab8[p][i / 4] |= uint32_t(e8[p][i]) << (8 * (i % 4));
    }
  }
  // 16 token rows: codes in the concatenated rotated domain, packed part after part.
  std::vector<std::vector<uint8_t>> codes(16);
  std::vector<std::vector<uint32_t>> words(16);
  for (int tok = 0; tok < 16; ++tok) {
    codes[tok].resize(D);
    for (int i = 0; i < D; ++i) codes[tok][i] = uint8_t(rng() % (1u << (i < m0 ? B + 1 : B)));
    std::vector<uint8_t> packed(tq::packed_bytes(m0, B + 1) + tq::packed_bytes(m1, B));
    tq::pack_codes_ref(codes[tok].data(), m0, B + 1, packed.data());
    if (B > 0) tq::pack_codes_ref(codes[tok].data() + m0, m1, B, packed.data() + tq::packed_bytes(m0, B + 1));
    ASSERT_EQ(int(packed.size()), Gr::kCodesBytes);
    words[tok].resize(packed.size() / 4);
    std::memcpy(words[tok].data(), packed.data(), packed.size());
  }
  auto part = [&](int dim) { return dim < m0 ? 0 : 1; };
  std::set<int> kd8, vd;
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int kc = 0; kc < D / 32; ++kc) {  // K int8: chunk kc = group kc
      const int bq = Gr::bits(kc), pq = Gr::part(kc);
      if (bq == 0) {  // tq1.5p's part 1: no lookup (the kernel skips the group)
        ASSERT_EQ(pq, 1);
        for (int j = 0; j < 8; ++j) {
          const int d = kdim8_frac<D, B, PROD>(t, kc, j);
          ASSERT_EQ(part(d), 1) << "k-chunk " << kc << " leaves its part";
          if (g == 0) kd8.insert(d);
        }
        continue;
      }
      const uint32_t s0 = sel_rt(bq, words[g].data() + Gr::word(kc), t);
      const uint32_t s1 = sel_rt(bq, words[g + 8].data() + Gr::word(kc), t);
      const uint32_t a[4] = {lookup_i8_rt(bq, tab8[pq], s0), lookup_i8_rt(bq, tab8[pq], s1),
                             lookup_i8_rt(bq, tab8[pq], s0 >> 16), lookup_i8_rt(bq, tab8[pq], s1 >> 16)};
      for (int j = 0; j < 8; ++j) {
        const int d = kdim8_frac<D, B, PROD>(t, kc, j);
        ASSERT_EQ(part(d), pq) << "k-chunk " << kc << " leaves its part";
        ASSERT_EQ(uint8_t(a[j < 4 ? 0 : 2] >> (8 * (j % 4))), e8[pq][codes[g][d]]) << "lane " << lane << " kc " << kc << " j " << j;
        ASSERT_EQ(uint8_t(a[j < 4 ? 1 : 3] >> (8 * (j % 4))), e8[pq][codes[g + 8][d]]) << "lane " << lane << " kc " << kc;
        if (g == 0) kd8.insert(d);
      }
    }
    for (int mt = 0; mt < D / 16; ++mt) {  // V: m-tile mt = half hf of group q
      const int q = mt >> 1, hf = mt & 1, bq = Gr::bits(q), pq = Gr::part(q), e = g & 1;
      if (bq == 0) {  // tq1.5p's part 1: rows the fold fills (no lookup)
        ASSERT_EQ(pq, 1);
        const int r0 = vdim_frac<D, B, PROD>(g, mt, 0), r1 = vdim_frac<D, B, PROD>(g, mt, 1);
        ASSERT_EQ(r0, vdim_frac_rt(Gr::kHi, B, g, mt, 0));  // the plan's fold rows
        ASSERT_EQ(r1, vdim_frac_rt(Gr::kHi, B, g, mt, 1));
        ASSERT_EQ(part(r0), 1) << "m-tile " << mt << " leaves its part";
        ASSERT_EQ(part(r1), 1);
        if (t == 0) { vd.insert(r0); vd.insert(r1); }
        continue;
      }
      auto sel = [&](int tok) { return sel_rt(bq, words[tok].data() + Gr::word(q), g >> 1); };
      const Sel ab = prep_rt(bq, merge_sel_lane(sel(2 * t), sel(2 * t + 1), e), S);
      const Sel cd = prep_rt(bq, merge_sel_lane(sel(2 * t + 8), sel(2 * t + 9), e), S);
      // The kernel's fused form (one rotation per plane word) must give the same selectors.
      auto fused = [&](int ta, int tb) {
        const uint32_t* wa = words[ta].data() + Gr::word(q);
        const uint32_t* wb = words[tb].data() + Gr::word(q);
        return merged_rt(bq, wa, wb, g >> 1, e);
      };
      ASSERT_EQ(fused(2 * t, 2 * t + 1), merge_sel_lane(sel(2 * t), sel(2 * t + 1), e)) << "lane " << lane << " mt " << mt;
      ASSERT_EQ(fused(2 * t + 8, 2 * t + 9), merge_sel_lane(sel(2 * t + 8), sel(2 * t + 9), e));
      uint32_t a0, a1, a2, a3;
      lookup_rt(bq, tab[pq], hf ? upper(ab, S) : ab, a0, a1);
      lookup_rt(bq, tab[pq], hf ? upper(cd, S) : cd, a2, a3);
      const int r0 = vdim_frac<D, B, PROD>(g, mt, 0), r1 = vdim_frac<D, B, PROD>(g, mt, 1);
      ASSERT_EQ(r0, vdim_frac_rt(Gr::kHi, B, g, mt, 0));  // the plan's fold rows
      ASSERT_EQ(r1, vdim_frac_rt(Gr::kHi, B, g, mt, 1));
      ASSERT_EQ(part(r0), pq) << "m-tile " << mt << " leaves its part";
      ASSERT_EQ(part(r1), pq);
      auto val = [&](int tok, int dim) { return h[pq][codes[tok][dim]]; };
      expect_v_fragment(a0, a1, a2, a3, t, r0, r1, val, lane, mt);
      if (t == 0) { vd.insert(r0); vd.insert(r1); }
    }
  }
  expect_permutation(kd8, D, "kdim8_frac");
  expect_permutation(vd, D, "vdim_frac");
}

TEST(CudaDecodeFrag, FractionalFragmentsStayInsideTheirPart) {
  check_frac<64, 1>(); check_frac<128, 1>(); check_frac<256, 1>();  // tq1.5: 2-bit part 0, 1-bit part 1
  check_frac<64, 3>();
  check_frac<128, 2>(); check_frac<128, 3>();
  check_frac<256, 2>(); check_frac<256, 3>();
}

// The mse codes of the fractional prod tq2.5p .. tq4.5p (B = 1..3): the tqB.5 fragment paths with
// the split of the codec's rate (tq2.5p: a 2-bit D/4 part 0 and a 1-bit part 1; tq3.5p: 3/2-bit
// halves), then their QJL signs: K by qjl_kdim (k32-chunk = group, so each part's accumulator sees
// its own coordinates), V by the fractional order qjl_vdim_frac (m-tile 2q + hf inside group q),
// every lane emulated; and the fold's k-steps / m-tiles per part (the kernel skips the other
// part's blocks: the plan's matrix must be zero there, i.e. each block lies in one part).
template <int D, int B, bool PROD = false>
void check_frac_wide();
template <int D, int B>
void check_fprod() {
  if constexpr (B >= 4) check_frac_wide<D, B, true>();  // tq5.5p .. tq7.5p: the fractional wide mse paths
  else check_frac<D, B, true>();
  using Gr = Groups<D, B, true, true>;
  SCOPED_TRACE(testing::Message() << "fractional prod D=" << D << " mse B=" << B);
  const int m0 = 32 * Gr::kHi;
  std::mt19937 rng(5 + D + B);
  const Rows R = random_rows(D, 1, rng);  // the D sign bits: part 0's groups, then part 1's
  auto bit = [&](int tok, int dim) { return int(R.codes[tok][dim]); };
  auto part = [&](int dim) { return dim < m0 ? 0 : 1; };
  std::set<int> vd;
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int kc = 0; kc < D / 32; ++kc)
      for (int j = 0; j < 8; ++j) ASSERT_EQ(part(qjl_kdim<D>(t, kc, j)), Gr::part(kc)) << "k-chunk " << kc;
    auto val = [&](int tok, int dim) { return uint16_t(bit(tok, dim) ? 0x3C00 : 0xBC00); };
    for (int q = 0; q < D / 32; ++q) {
      const uint32_t xab = prmt(R.words[2 * t][q], R.words[2 * t + 1][q], qjl_fxsel(g)) >> qjl_fxshift(g);
      const uint32_t xcd = prmt(R.words[2 * t + 8][q], R.words[2 * t + 9][q], qjl_fxsel(g)) >> qjl_fxshift(g);
      for (int hf = 0; hf < 2; ++hf) {
        const int mt = 2 * q + hf, r0 = qjl_vdim_frac(g, mt, 0), r1 = qjl_vdim_frac(g, mt, 1);
        ASSERT_EQ(r0 / 32, q);
        ASSERT_EQ(r1 / 32, q);
        expect_v_fragment(qjl_h2(xab, 2 * hf), qjl_h2(xab, 2 * hf + 1), qjl_h2(xcd, 2 * hf), qjl_h2(xcd, 2 * hf + 1), t, r0,
                          r1, val, lane, mt);
        if (t == 0) { vd.insert(r0); vd.insert(r1); }
      }
    }
  }
  expect_permutation(vd, D, "qjl_vdim_frac");
  for (int mt = 0; mt < D / 16; ++mt)  // decode_prod.cuh prod_v_fold<D, M0>: m-tiles [0, M0/16) are part 0
    for (int g = 0; g < 8; ++g)
      for (int r = 0; r < 2; ++r) {
        ASSERT_EQ(part(vdim_frac<D, B, true>(g, mt, r)), mt < m0 / 16 ? 0 : 1);
        ASSERT_EQ(part(qjl_vdim_frac(g, mt, r)), mt < m0 / 16 ? 0 : 1);
      }
  for (int ks = 0; ks < D / 8; ++ks)  // k-steps [0, M0/8) are part 0
    for (int t = 0; t < 4; ++t)
      for (int i = 0; i < 4; ++i) ASSERT_EQ(part(qjl_fold_in(ks, t, i)), ks < m0 / 8 ? 0 : 1);
}

TEST(CudaDecodeFrag, FractionalProdFragmentsStayInsideTheirPart) {
  check_fprod<64, 0>(); check_fprod<128, 0>(); check_fprod<256, 0>();   // tq1.5p: halves at 1 and 0 (signs only) bits
  check_fprod<128, 1>(); check_fprod<256, 1>();                          // tq2.5p: D/4 at 2 bits, 3D/4 at 1
  check_fprod<64, 2>(); check_fprod<128, 2>(); check_fprod<256, 2>();   // tq3.5p: halves at 3 and 2 bits
  check_fprod<64, 3>(); check_fprod<128, 3>(); check_fprod<256, 3>();   // tq4.5p: halves at 4 and 3 bits
  check_fprod<64, 4>(); check_fprod<128, 4>(); check_fprod<256, 4>();   // tq5.5p .. tq7.5p: fp16-table mse parts
  check_fprod<64, 5>(); check_fprod<128, 5>(); check_fprod<256, 5>();
  check_fprod<64, 6>(); check_fprod<128, 6>(); check_fprod<256, 6>();
}

// Fractional wide tq4.5 .. tq7.5 (parts of D/2 at B + 1 and B bits, fp16 tables per part): every
// fp16 value each lane hands to the tensor cores, K from wide_k_run / wide_k_frag over each part's
// codes (order kdim_fwide), V from frac_wide_run / frac_wide_v_frag (order vdim_frac, the order the
// segment epilogue scatters by); no k-chunk or m-tile leaves its part; both orders are permutations.
// PROD: the mse codes of tq(B+1).5p (tq5.5p .. tq7.5p), the QJL signs after them.
template <int D, int B, bool PROD>
void check_frac_wide() {
  using Gr = Groups<D, B, true, PROD>;
  SCOPED_TRACE(testing::Message() << "fractional wide D=" << D << " B=" << B << ".5" << (PROD ? " (mse of prod)" : ""));
  std::mt19937 rng(777 + D + B);
  const int m0 = D / 2;
  ASSERT_EQ(32 * Gr::kHi, m0);
  {  // the compile-time split is the CPU codec's
    const std::string name = "tq" + std::to_string(PROD ? B + 1 : B) + (PROD ? ".5p" : ".5");
    const auto codec = tq::Codec::create(tq::parse_codec(name), D);
    const tq::TqLayout* L = codec->tq_layout();
    ASSERT_TRUE(L && L->n_parts == 2) << name;
    EXPECT_EQ(int(L->part[0].dim), m0) << name;
    EXPECT_EQ(int(L->part[1].dim), D - m0) << name;
    EXPECT_EQ(int(L->part[0].mse_bits), B + 1) << name;
    EXPECT_EQ(int(L->part[1].mse_bits), B) << name;
    EXPECT_EQ(int(L->part[1].mse_offset), Gr::word(Gr::kHi) * 4) << name;
    EXPECT_EQ(int(L->codes_bytes), Gr::kCodesBytes + (PROD ? D / 8 : 0)) << name;
    if (PROD) EXPECT_EQ(int(L->part[0].qjl_offset), Gr::kCodesBytes) << name;  // the signs follow the mse codes
  }
  std::vector<uint16_t> h[2];  // distinct bit patterns per part
  for (int p = 0; p < 2; ++p) {
    h[p].resize(size_t(1) << (p == 0 ? B + 1 : B));
    for (size_t i = 0; i < h[p].size(); ++i) h[p][i] = uint16_t(0x1000 + 0x4000 * p + 29 * i + (rng() % 29));
  }
  std::vector<std::vector<uint8_t>> codes(16);
  std::vector<std::vector<uint32_t>> words(16);
  for (int tok = 0; tok < 16; ++tok) {
    codes[tok].resize(D);
    for (int i = 0; i < D; ++i) codes[tok][i] = uint8_t(rng() % (1u << (i < m0 ? B + 1 : B)));
    std::vector<uint8_t> packed(tq::packed_bytes(m0, B + 1) + tq::packed_bytes(D - m0, B));
    tq::pack_codes_ref(codes[tok].data(), m0, B + 1, packed.data());
    tq::pack_codes_ref(codes[tok].data() + m0, D - m0, B, packed.data() + tq::packed_bytes(m0, B + 1));
    ASSERT_EQ(int(packed.size()), Gr::kCodesBytes);
    words[tok].resize(packed.size() / 4);
    std::memcpy(words[tok].data(), packed.data(), packed.size());
  }
  auto part = [&](int dim) { return dim < m0 ? 0 : 1; };
  auto val = [&](int tok, int dim) { return h[part(dim)][codes[tok][dim]]; };
  std::set<int> kd, vd;
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    // K: per part, the part's run of this lane, k-chunks of the part
    auto k_part = [&](auto pc) {
      constexpr int p = decltype(pc)::value, bp = p ? B : B + 1;
      const int w0 = Gr::word(p * Gr::kHi);
      const WideRun<bp> r0 = wide_k_run<D / 2, bp>(words[g].data() + w0, t, 0);
      const WideRun<bp> r1 = wide_k_run<D / 2, bp>(words[g + 8].data() + w0, t, 0);
      for (int kl = 0; kl < D / 32; ++kl) {
        const int kc = p * (D / 32) + kl;
        uint32_t a[4];
        wide_k_frag<bp>(h[p].data(), r0, r1, kl, a);
        int d[4];
        for (int jj = 0; jj < 4; ++jj) {
          d[jj] = kdim_fwide<D>(t, kc, jj);
          ASSERT_EQ(part(d[jj]), p) << "k-chunk " << kc << " leaves its part";
        }
        expect_k_fragment(a, g, d, val, lane, kc);
        if (g == 0) for (int jj = 0; jj < 4; ++jj) kd.insert(d[jj]);
      }
    };
    k_part(std::integral_constant<int, 0>{});
    k_part(std::integral_constant<int, 1>{});
    // V: group q = m-tiles 2q, 2q + 1, the runs of tokens 2t, 2t + 1, 2t + 8, 2t + 9
    auto v_group = [&](int q, auto bc) {
      constexpr int bq = decltype(bc)::value;
      ASSERT_EQ(Gr::bits(q), bq);
      const int pq = Gr::part(q);
      auto run = [&](int tok) { return frac_wide_run<bq>(words[tok].data() + Gr::word(q), g); };
      const FracRun<bq> ra = run(2 * t), rb = run(2 * t + 1), rc = run(2 * t + 8), rd = run(2 * t + 9);
      for (int hf = 0; hf < 2; ++hf) {
        const int mt = 2 * q + hf;
        uint32_t a[4];
        frac_wide_v_frag<bq>(h[pq].data(), ra, rb, rc, rd, hf, a);
        const int r0 = vdim_frac<D, B, PROD>(g, mt, 0), r1 = vdim_frac<D, B, PROD>(g, mt, 1);
        ASSERT_EQ(r0, vdim_frac_rt(Gr::kHi, B, g, mt, 0));  // the plan's fold rows (prod)
        ASSERT_EQ(r1, vdim_frac_rt(Gr::kHi, B, g, mt, 1));
        ASSERT_EQ(part(r0), pq) << "m-tile " << mt << " leaves its part";
        ASSERT_EQ(part(r1), pq);
        expect_v_fragment(a[0], a[1], a[2], a[3], t, r0, r1, val, lane, mt);
        if (t == 0) { vd.insert(r0); vd.insert(r1); }
      }
    };
    for (int q = 0; q < D / 32; ++q) {
      if (q < Gr::kHi) v_group(q, std::integral_constant<int, B + 1>{});
      else v_group(q, std::integral_constant<int, B>{});
    }
  }
  expect_permutation(kd, D, "kdim_fwide");
  expect_permutation(vd, D, "vdim_frac");
}

TEST(CudaDecodeFrag, FractionalWideFragmentsMatchReferenceUnpacking) {
  check_frac_wide<64, 4>(); check_frac_wide<64, 5>(); check_frac_wide<64, 6>(); check_frac_wide<64, 7>();
  check_frac_wide<128, 4>(); check_frac_wide<128, 5>(); check_frac_wide<128, 6>(); check_frac_wide<128, 7>();
  check_frac_wide<256, 4>(); check_frac_wide<256, 5>(); check_frac_wide<256, 6>(); check_frac_wide<256, 7>();
}

// TurboQuant-prod: the QJL signs as the kernel's fragments, every lane emulated. K: the int8 A
// registers from the sign words (frag::qjl_a) hold 0/1 = the sign bit of the coordinate that
// qjl_kdim names (q's sketch follows that order). V: the half2 ±1.0 of tokens (2t, 2t+1) / (2t+8,
// 2t+9) at the dims qjl_vdim names (rows g, g + 8 of m-tile mt). Both orders are permutations, and
// the fold's input coordinates (qjl_fold_in) cover each k-step's 8 once.
template <int D>
void check_qjl() {
  SCOPED_TRACE(testing::Message() << "D=" << D);
  std::mt19937 rng(77 + D);
  const Rows R = random_rows(D, 1, rng);
  auto bit = [&](int tok, int dim) { return int(R.codes[tok][dim]); };
  std::set<int> kd, vd;
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int kc = 0; kc < D / 32; ++kc) {
      uint32_t a[4];
      qjl_a(R.words[g][kc], t, a[0], a[2]);
      qjl_a(R.words[g + 8][kc], t, a[1], a[3]);
      for (int i = 0; i < 4; ++i) {
        const int d0 = qjl_kdim<D>(t, kc, i), d1 = qjl_kdim<D>(t, kc, 4 + i);
        ASSERT_EQ(int(a[0] >> (8 * i) & 0xFF), bit(g, d0)) << "lane " << lane << " kc " << kc;
        ASSERT_EQ(int(a[1] >> (8 * i) & 0xFF), bit(g + 8, d0));
        ASSERT_EQ(int(a[2] >> (8 * i) & 0xFF), bit(g, d1));
        ASSERT_EQ(int(a[3] >> (8 * i) & 0xFF), bit(g + 8, d1));
        if (g == 0) { kd.insert(d0); kd.insert(d1); }
        ASSERT_EQ(d0 / 32, kc);  // a k32-chunk stays in its group
      }
    }
    const int w = qjl_vword(D, g);
    uint32_t xab[2], xcd[2];
    for (int i = 0; i < 2; ++i) {
      xab[i] = prmt(R.words[2 * t][w], R.words[2 * t + 1][w], qjl_xsel(D, g, i));
      xcd[i] = prmt(R.words[2 * t + 8][w], R.words[2 * t + 9][w], qjl_xsel(D, g, i));
    }
    auto val = [&](int tok, int dim) { return uint16_t(bit(tok, dim) ? 0x3C00 : 0xBC00); };
    for (int mt = 0; mt < D / 16; ++mt) {
      const int j0 = 2 * mt, j1 = 2 * mt + 1;
      expect_v_fragment(qjl_h2(xab[j0 >> 4], qjl_xbit(D, j0)), qjl_h2(xab[j1 >> 4], qjl_xbit(D, j1)),
                        qjl_h2(xcd[j0 >> 4], qjl_xbit(D, j0)), qjl_h2(xcd[j1 >> 4], qjl_xbit(D, j1)), t,
                        qjl_vdim<D>(g, mt, 0), qjl_vdim<D>(g, mt, 1), val, lane, mt);
      if (t == 0) { vd.insert(qjl_vdim<D>(g, mt, 0)); vd.insert(qjl_vdim<D>(g, mt, 1)); }
    }
  }
  EXPECT_EQ(int(kd.size()), D);
  EXPECT_EQ(int(vd.size()), D);
  EXPECT_TRUE(*kd.begin() == 0 && *kd.rbegin() == D - 1);
  EXPECT_TRUE(*vd.begin() == 0 && *vd.rbegin() == D - 1);
  for (int ks = 0; ks < D / 8; ++ks) {
    std::set<int> in;
    for (int t = 0; t < 4; ++t)
      for (int i = 0; i < 4; i += 2) in.insert(qjl_fold_in(ks, t, i));
    EXPECT_EQ(int(in.size()), 8);
    EXPECT_TRUE(*in.begin() == 8 * ks && *in.rbegin() == 8 * ks + 7);
  }
  // The fold's output rows are the tqB V dims (vdim): its A rows use the run-time form.
  for (int bits = 1; bits <= 4; ++bits)
    for (int g = 0; g < 8; ++g)
      for (int mt = 0; mt < D / 16; ++mt)
        for (int r = 0; r < 2; ++r) ASSERT_EQ(vdim_tq(D, bits, g, mt, r), code_of(bits, g * (D / 64) + (mt >> 2), 4 * (mt & 1) + ((mt >> 1) & 1) + 2 * r));
}

TEST(CudaDecodeFrag, QjlFragmentsMatchReferenceUnpacking) {
  check_qjl<64>();
  check_qjl<128>();
  check_qjl<256>();
  EXPECT_EQ((vdim<128, 3>(5, 7, 1)), vdim_tq(128, 3, 5, 7, 1));
}

// The v3 kernel's compile-time row sizes (decode_v3_params.h codes_bytes / norm_bytes, and the QJL
// signs at word D·B/32 of a prod row: decode_prod.cuh) against the CPU codec's layout, for every
// fractional and prod codec with a kernel (the plan checks the same at run time, on a GPU only).
TEST(CudaDecodeFrag, KernelRowLayoutsMatchTheCodecs) {
  for (int D : {64, 128, 256}) {
    for (int B = 1; B <= 7; ++B) {  // tq1.5 .. tq7.5 (tq2.5: not at 64)
      if (B == 2 && D == 64) continue;
      const std::string name = "tq" + std::to_string(B) + ".5";
      const auto codec = tq::Codec::create(tq::parse_codec(name), D);  // owns the layout
      const tq::TqLayout* L = codec->tq_layout();
      EXPECT_EQ(tq::cuda::v3::codes_bytes(D, B, 1), int(L->codes_bytes)) << name << " D " << D;
      EXPECT_EQ(tq::cuda::v3::norm_bytes(B, 1), int(L->scalar_bytes)) << name << " D " << D;
      EXPECT_EQ(32 * tq::cuda::v3::hi_groups(D, B, 1), int(L->part[0].dim)) << name << " D " << D;
    }
    for (int B = 1; B <= 7; ++B) {  // tq1.5p .. tq7.5p (tq2.5p: not at 64): kernel bits = part 1's mse bits B - 1
      if (B == 2 && D == 64) continue;
      const std::string name = "tq" + std::to_string(B) + ".5p";
      const auto codec = tq::Codec::create(tq::parse_codec(name), D);
      const tq::TqLayout* L = codec->tq_layout();
      ASSERT_TRUE(L->prod && L->n_parts == 2) << name;
      EXPECT_EQ(tq::cuda::v3::codes_bytes(D, B - 1, 1, 1), int(L->codes_bytes)) << name << " D " << D;
      EXPECT_EQ(tq::cuda::v3::norm_bytes(B - 1, 1, 1), int(L->scalar_bytes)) << name << " D " << D;
      EXPECT_EQ(32 * tq::cuda::v3::hi_groups(D, B - 1, 1, 1), int(L->part[0].dim)) << name << " D " << D;
      // decode_fprod.cuh: the signs of part 1 right after part 0's (sign word q = group q), scalars
      // (n_0, γ_0, n_1, γ_1)
      EXPECT_EQ(L->part[1].qjl_offset, L->part[0].qjl_offset + L->part[0].dim / 8) << name;
      EXPECT_EQ(L->part[0].norm_offset, 0u); EXPECT_EQ(L->part[0].gamma_offset, 2u);
      EXPECT_EQ(L->part[1].norm_offset, 4u); EXPECT_EQ(L->part[1].gamma_offset, 6u);
    }
    for (int MB = 1; MB <= 7; ++MB) {  // tq2p .. tq8p
      const std::string name = "tq" + std::to_string(MB + 1) + "p";
      const auto codec = tq::Codec::create(tq::parse_codec(name), D);
      const tq::TqLayout* L = codec->tq_layout();
      ASSERT_TRUE(L->prod && L->n_parts == 1) << name;
      EXPECT_EQ(int(L->part[0].mse_bits), MB) << name;
      EXPECT_EQ(tq::cuda::v3::codes_bytes(D, MB, 0, 1), int(L->codes_bytes)) << name << " D " << D;
      EXPECT_EQ(tq::cuda::v3::norm_bytes(MB, 0, 1), int(L->scalar_bytes)) << name << " D " << D;
      EXPECT_EQ(4 * (D * MB / 32), int(L->part[0].qjl_offset)) << name << " D " << D;
      EXPECT_EQ(2, int(L->part[0].gamma_offset)) << name;  // (norm, gamma) pairs: the kernel reads kn[2 r + 1]
    }
  }
}

// The plan's QJL matrices (decode_qjl_mats.h) against the codec's sketches (TqCodec::sketch /
// unsketch_add, per part), applied as the kernel applies them: K's blocks as dense_block does
// (y_i = sum_j a[j m + i] x_j per part; one part: S^T, κ√D separate), V's fold in fragment order as
// prod_v_fold does (every (m-tile, k-step, lane, slot) entry at its row vdim* and column qjl_fold_in;
// tf32 entries: 2^-11 relative each). Prod codecs of every kind: one part (tq3p, the wide tq6p) and
// fractional (tq1.5p .. tq7.5p).
TEST(CudaDecodeFrag, QjlMatricesMatchTheCodecsSketches) {
  std::mt19937 rng(2024);
  std::normal_distribution<float> nd;
  struct C { const char* name; int D; };
  for (const C c : {C{"tq3p", 64}, C{"tq3p", 256}, C{"tq6p", 128}, C{"tq2.5p", 128}, C{"tq2.5p", 256}, C{"tq3.5p", 64},
                    C{"tq3.5p", 128}, C{"tq4.5p", 256}, C{"tq1.5p", 64}, C{"tq1.5p", 256}, C{"tq5.5p", 128},
                    C{"tq6.5p", 64}, C{"tq7.5p", 256}}) {
    SCOPED_TRACE(testing::Message() << c.name << " D=" << c.D);
    const int D = c.D;
    const auto codec = tq::Codec::create(tq::parse_codec(c.name), D);
    const auto& t = dynamic_cast<const tq::TqCodec&>(*codec);
    const bool fr = t.parts().size() == 2;
    const int vb = int(t.tq_layout()->part[fr ? 1 : 0].mse_bits);
    std::vector<float> x(D), ref(D), got(D, 0.f);
    for (auto& v : x) v = nd(rng);
    // K
    const std::vector<float> ka = tq::cuda::v3::qjl_k_sketch(t, D);
    t.sketch(x.data(), ref.data());
    size_t off = 0;
    for (size_t p = 0; p < t.parts().size(); ++p) {
      const int m = int(t.tq_layout()->part[p].dim), f = int(t.tq_layout()->part[p].first);
      const double cp = fr ? t.parts()[p].qjl_scale * std::sqrt(double(m)) : 1.0;
      for (int i = 0; i < m; ++i) {
        double y = 0;
        for (int j = 0; j < m; ++j) y += double(ka[off + size_t(j) * m + i]) * x[f + j];
        ASSERT_NEAR(y, cp * ref[f + i], 1e-4 * std::sqrt(double(m))) << "K row " << f + i;
      }
      off += size_t(m) * m;
    }
    for (size_t i = off; i < ka.size(); ++i) ASSERT_EQ(ka[i], 0.f) << "K padding";
    // V
    const std::vector<float> va = tq::cuda::v3::qjl_v_fold(t, D, vb, vb >= 5);
    std::vector<float> sc(D);
    for (size_t p = 0; p < t.parts().size(); ++p) {
      const int m = int(t.tq_layout()->part[p].dim), f = int(t.tq_layout()->part[p].first);
      const double cp = t.parts()[p].qjl_scale * std::sqrt(double(m));
      for (int j = 0; j < m; ++j) sc[f + j] = float(cp * x[f + j]);
    }
    std::fill(ref.begin(), ref.end(), 0.f);
    t.unsketch_add(sc.data(), ref.data());
    std::vector<int> seen(size_t(D) * D, 0);
    for (int mt = 0; mt < D / 16; ++mt)
      for (int ks = 0; ks < D / 8; ++ks)
        for (int lane = 0; lane < 32; ++lane)
          for (int i = 0; i < 4; ++i) {
            const int g = lane >> 2;
            const int out = fr ? vdim_frac_rt(int(t.tq_layout()->part[0].dim) / 32, vb, g, mt, i & 1)
                               : vb >= 5 ? vdim_wide_rt(D, g, mt, i & 1) : vdim_tq(D, vb, g, mt, i & 1);
            const int in = qjl_fold_in(ks, lane & 3, i);
            ++seen[size_t(out) * D + in];
            got[out] += va[((size_t(mt) * (D / 8) + ks) * 32 + lane) * 4 + i] * x[in];
          }
    for (int v : seen) ASSERT_EQ(v, 1) << "a fold entry visited twice or never";
    double num = 0, den = 0;
    for (int i = 0; i < D; ++i) { num += double(got[i] - ref[i]) * (got[i] - ref[i]); den += double(ref[i]) * ref[i]; }
    EXPECT_LT(std::sqrt(num / den), 2e-3) << "V fold";
  }
}

// tq2.5 / tq2.5p at head_dim 64 (decode_frac64.cu, CUDA cores): the kernels' arithmetic, repeated
// here in double with the plan's tables (frac64::make_tables) and the kernels' unpacking
// (frac64::code_at on the 18-byte rows): q rotated per part (16-dim Hadamard, 48-dim dense; prod:
// sketched), the score sum_p n_p (<r_p, c_p> + kappa_p gamma_p <s_p, sigma_p>) against
// <q, TqCodec::decode(x)>, and the value R_p^T (n_p c_p + kappa_p S_p^T n_p gamma_p sigma_p) against
// decode(x) itself.
TEST(CudaDecodeFrag, Frac64ScoresAndValuesMatchTheCodec) {
  namespace f = tq::cuda::frac64;
  std::mt19937 rng(20261130u);
  std::normal_distribution<float> nd;
  auto fwht16 = [](double* y) {
    for (int h = 1; h < 16; h <<= 1)
      for (int i = 0; i < 16; i += 2 * h)
        for (int j = i; j < i + h; ++j) {
          const double a = y[j], b = y[j + h];
          y[j] = a + b;
          y[j + h] = a - b;
        }
    for (int j = 0; j < 16; ++j) y[j] *= 0.25;
  };
  for (const char* name : {"tq2.5", "tq2.5p", "tq2.5:seed=5", "tq2.5p:seed=9"}) {
    SCOPED_TRACE(name);
    const bool prod = std::string(name).find("p") != std::string::npos;
    const auto codec = tq::Codec::create(tq::parse_codec(name), 64);
    const auto& t = dynamic_cast<const tq::TqCodec&>(*codec);
    ASSERT_STREQ(tq::cuda::append::frac64_check(t, prod), "");
    auto T = std::make_unique<f::Tables>();
    f::make_tables(t, prod, *T);
    const tq::TqLayout L = tq::cuda::append::frac64_layout(prod);
    const int B0 = int(L.part[0].mse_bits), B1 = int(L.part[1].mse_bits), MO1 = int(L.part[1].mse_offset);
    const int QO0 = int(L.part[0].qjl_offset), QO1 = int(L.part[1].qjl_offset);
    ASSERT_EQ(t.code_size(), size_t(18 + (prod ? 8 : 4)));
    std::vector<uint8_t> code(t.code_size());
    double worst_s = 0, worst_v = 0;
    for (int rep = 0; rep < 300; ++rep) {
      float x[64], q[64], xd[64];
      const float scale = std::pow(10.f, float(int(rng() % 5)) - 2.f);
      for (int j = 0; j < 64; ++j) { x[j] = nd(rng) * scale; q[j] = nd(rng); }
      if (rep == 0) for (int j = 0; j < 16; ++j) x[j] = 0.f;  // a zero part
      t.encode(x, 1, 64, code.data());
      t.decode(code.data(), 1, xd, 64);
      // q: r = (R_0 q_0, R_1 q_1), s = (S_0 r_0, S_1 r_1)
      double r[64], s[64] = {};
      for (int j = 0; j < 16; ++j) r[j] = q[j];
      for (int rd = 0; rd < 3; ++rd) {
        for (int j = 0; j < 16; ++j) r[j] *= T->sign0[rd][j];
        fwht16(r);
      }
      for (int i = 0; i < 48; ++i) {
        double a = 0;
        for (int j = 0; j < 48; ++j) a += double(T->m1[i * 48 + j]) * q[16 + j];
        r[16 + i] = a;
      }
      if (prod) {
        for (int i = 0; i < 16; ++i)
          for (int j = 0; j < 16; ++j) s[i] += double(T->s0[i * 16 + j]) * r[j];
        for (int i = 0; i < 48; ++i)
          for (int j = 0; j < 48; ++j) s[16 + i] += double(T->s1[i * 48 + j]) * r[16 + j];
      }
      const uint8_t* row = code.data();
      auto half = [&](int k) {
        uint16_t h;
        std::memcpy(&h, row + 18 + 2 * k, 2);
        return double(tq::half_to_float(h));
      };
      const double n0 = half(0), n1 = half(prod ? 2 : 1), g0 = prod ? half(1) : 0, g1 = prod ? half(3) : 0;
      // score
      double a0 = 0, a1 = 0, z0 = 0, z1 = 0;
      for (int j = 0; j < 16; ++j) a0 += r[j] * T->cent0[f::code_at(row, 0, 16, B0, j)];
      for (int j = 0; j < 48; ++j) a1 += r[16 + j] * T->cent1[f::code_at(row, MO1, 48, B1, j)];
      if (prod) {
        for (int j = 0; j < 16; ++j) z0 += s[j] * (f::code_at(row, QO0, 16, 1, j) ? 1 : -1);
        for (int j = 0; j < 48; ++j) z1 += s[16 + j] * (f::code_at(row, QO1, 48, 1, j) ? 1 : -1);
      }
      const double score = n0 * (a0 + T->kappa0 * g0 * z0) + n1 * (a1 + T->kappa1 * g1 * z1);
      double want = 0, qq = 0, vv = 0;
      for (int j = 0; j < 64; ++j) { want += double(q[j]) * xd[j]; qq += double(q[j]) * q[j]; vv += double(xd[j]) * xd[j]; }
      const double es = std::abs(score - want) / (std::sqrt(qq * vv) + 1e-30);
      worst_s = std::max(worst_s, es);
      EXPECT_LT(es, 1e-5) << "rep " << rep << ": score " << score << " want " << want;
      // value
      double o[64], o2[64] = {};
      for (int j = 0; j < 16; ++j) {
        o[j] = n0 * T->cent0[f::code_at(row, 0, 16, B0, j)];
        if (prod) o2[j] = n0 * g0 * (f::code_at(row, QO0, 16, 1, j) ? 1 : -1);
      }
      for (int j = 0; j < 48; ++j) {
        o[16 + j] = n1 * T->cent1[f::code_at(row, MO1, 48, B1, j)];
        if (prod) o2[16 + j] = n1 * g1 * (f::code_at(row, QO1, 48, 1, j) ? 1 : -1);
      }
      if (prod) {
        double add[64] = {};
        for (int j = 0; j < 16; ++j)
          for (int i = 0; i < 16; ++i) add[j] += double(T->s0[i * 16 + j]) * o2[i];
        for (int j = 0; j < 48; ++j)
          for (int i = 0; i < 48; ++i) add[16 + j] += double(T->s1[i * 48 + j]) * o2[16 + i];
        for (int j = 0; j < 64; ++j) o[j] += (j < 16 ? T->kappa0 : T->kappa1) * add[j];
      }
      double v[64];
      for (int j = 0; j < 48; ++j) {
        double a = 0;
        for (int i = 0; i < 48; ++i) a += double(T->m1[i * 48 + j]) * o[16 + i];
        v[16 + j] = a;
      }
      for (int j = 0; j < 16; ++j) v[j] = o[j];
      for (int rd = 2; rd >= 0; --rd) {
        fwht16(v);
        for (int j = 0; j < 16; ++j) v[j] *= T->sign0[rd][j];
      }
      double ev = 0;
      for (int j = 0; j < 64; ++j) ev += (v[j] - xd[j]) * (v[j] - xd[j]);
      ev = std::sqrt(ev / (vv + 1e-30));
      worst_v = std::max(worst_v, ev);
      EXPECT_LT(ev, 1e-5) << "rep " << rep;
    }
    std::printf("    %s: worst rel. error score %.1e, value %.1e\n", name, worst_s, worst_v);
  }
}

}  // namespace
