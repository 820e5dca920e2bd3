// CUDA append (encode into pages) vs the CPU encoder: the whole pool, byte for byte. Fresh random
// vectors of several scales, shuffled slots with padding entries, a poisoned pool (bytes nobody
// should write must keep the poison). Skips (visibly) without a GPU.
// Random vectors alone hardly test the order of the float operations: a code changes only when a
// rotated coordinate falls within an ulp or so of a boundary (a CPU emulation with mul + add in
// place of the dense rotation's fma chain matched all of 6000 Gaussian vectors). So every 4th row
// of a TurboQuant codec is built in the rotated domain with its coordinates on the codebook
// boundaries (unrotate): from f32 input, its codes then depend on the last bit of every rotated
// value (the same emulation then differed on every such vector). Prod codecs (QJL signs of the
// residual e = r - c[code]) get a third kind of row: e orthogonal to 8 random rows of the sketch S,
// so that those rows' (S e)_i are rounding noise (~1e-8 against ~1e-2 for the others) and their
// signs depend on the last bits of the rotated values and of the fp32 residual.
#include <gtest/gtest.h>

#if defined(TQ_HAVE_CUDA)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <numeric>
#include <random>
#include <string>

#include "cuda/append_frac64.h"
#include "cuda/append_params.h"
#include "turboquant/codebook.h"
#include "turboquant/cuda/append.h"
#include "test_util.h"
#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/tq_codec.h"

namespace {

#define CK(x) ASSERT_EQ((x), cudaSuccess) << #x

// Input rows for codec c (rows x D), rounded to dt; raw: the bytes the GPU reads.
std::vector<float> test_rows(const tq::Codec& c, int D, size_t rows, tq::cuda::DType dt, std::mt19937& rng,
                             std::vector<uint8_t>& raw) {
  // Inputs: Gaussian rows at scales 1e-3 .. 1e2, every 4th TurboQuant row on the boundaries (part
  // by part: all coordinates but the last on random boundaries, the last one making the part a unit
  // vector, times the scale), rounded to the input dtype (what the GPU reads).
  const auto* tqc = dynamic_cast<const tq::TqCodec*>(&c);
  std::normal_distribution<float> nd;
  std::vector<float> x(rows * D), row(D), rot(D);
  raw.assign(x.size() * (dt == tq::cuda::DType::kF32 ? 4 : 2), 0);
  for (size_t r = 0; r < rows; ++r) {
    const float scale = std::pow(10.f, float(int(rng() % 6)) - 3.f);
    for (int j = 0; j < D; ++j) row[j] = nd(rng) * scale;
    if (tqc && r % 4 == 1) {
      const tq::TqLayout& tl = *tqc->tq_layout();
      for (uint32_t p = 0; p < tl.n_parts; ++p) {
        const int m = int(tl.part[p].dim), f = int(tl.part[p].first);
        const std::vector<double>& b = tqc->parts()[p].cb->boundaries();
        double ss = 0;
        for (int j = 0; j < m - 1; ++j) {
          // tq1.5p's part 1 has no mse stage (no boundaries): a Gaussian coordinate there.
          rot[f + j] = b.empty() ? float(nd(rng) / std::sqrt(double(m))) : float(b[rng() % b.size()]);
          ss += double(rot[f + j]) * rot[f + j];
        }
        rot[f + m - 1] = float(std::sqrt(std::max(0.0, 1.0 - ss)));
        for (int j = 0; j < m; ++j) rot[f + j] *= scale;
      }
      tqc->unrotate(rot.data(), row.data());
    } else if (tqc && tqc->prod() && r % 4 == 2) {
      // Rotated domain, per part (dim m, its own sketch): a Gaussian unit vector u, c = its
      // centroids, e = u - c with the components along c and along 8 sketch rows removed, rescaled
      // so that |c + e| = 1.
      const tq::TqLayout& tl = *tqc->tq_layout();
      for (uint32_t p = 0; p < tl.n_parts; ++p) {
      const auto& part = tqc->parts()[p];
      const int m = int(tl.part[p].dim), f0 = int(tl.part[p].first);
      std::vector<double> u(m), cc(m), e(m);
      double uu = 0;
      for (auto& z : u) { z = nd(rng); uu += z * z; }
      for (int j = 0; j < m; ++j) {
        u[j] /= std::sqrt(uu);
        cc[j] = part.cb->centroids_f32()[part.cb->quantize(float(u[j]))];
        e[j] = u[j] - cc[j];
      }
      std::vector<std::vector<double>> basis;  // orthonormal: c and the 8 rows
      for (int k = 0; k <= 8; ++k) {
        std::vector<double> b(m);
        const int row_i = int(rng() % m);
        for (int j = 0; j < m; ++j) b[j] = k == 0 ? cc[j] : double(part.sketch[size_t(row_i) * m + j]);
        for (const auto& o : basis) {
          double d = 0;
          for (int j = 0; j < m; ++j) d += b[j] * o[j];
          for (int j = 0; j < m; ++j) b[j] -= d * o[j];
        }
        double bb = 0;
        for (double z : b) bb += z * z;
        if (bb < 1e-12) continue;
        for (double& z : b) z /= std::sqrt(bb);
        basis.push_back(b);
      }
      for (const auto& o : basis) {
        double d = 0;
        for (int j = 0; j < m; ++j) d += e[j] * o[j];
        for (int j = 0; j < m; ++j) e[j] -= d * o[j];
      }
      double c2 = 0, e2 = 0;
      for (int j = 0; j < m; ++j) { c2 += cc[j] * cc[j]; e2 += e[j] * e[j]; }
      const double f = c2 < 1 && e2 > 0 ? std::sqrt((1 - c2) / e2) : 0.0;
      for (int j = 0; j < m; ++j) rot[f0 + j] = float((cc[j] + f * e[j]) * scale);
      }
      tqc->unrotate(rot.data(), row.data());
    }
    for (int j = 0; j < D; ++j) {
      float v = row[j];
      const size_t i = r * D + j;
      if (dt == tq::cuda::DType::kF32) {
        std::memcpy(raw.data() + 4 * i, &v, 4);
      } else {
        const uint16_t h = dt == tq::cuda::DType::kF16 ? tq::float_to_half(v) : tq::float_to_bf16(v);
        v = dt == tq::cuda::DType::kF16 ? tq::half_to_float(h) : tq::bf16_to_float(h);
        std::memcpy(raw.data() + 2 * i, &h, 2);
      }
      x[i] = v;
    }
  }
  return x;
}

// n tokens x Hkv heads; the pool has room for n + 200 tokens (pages of 64). quads: the pool in token
// quads (AppendPlan token_quads), expected as layout.h's quad_put_token of the CPU encoder's codes.
// contiguous: slots start + i (a prefill; start random, so quads of 4 tokens may straddle blocks)
// instead of shuffled ones.
void run_append(const char* codec, int D, tq::cuda::DType dt, std::mt19937& rng, int n = 113, int Hkv = 3,
                bool quads = false, bool contiguous = false) {
  SCOPED_TRACE(testing::Message() << "codec=" << codec << " D=" << D << " dtype=" << int(dt) << " n=" << n
                                  << " Hkv=" << Hkv << (quads ? " quads" : ""));
  const int PT = 64, num_pages = (n + 200) / PT + 1;
  tq::cuda::AppendPlan plan(tq::parse_codec(codec), Hkv, D, PT, num_pages, dt, quads);
  const tq::KvPageLayout L = plan.layout();
  EXPECT_EQ(L.quad_bits, quads ? uint32_t(tq::parse_codec(codec).bits) : 0u);
  const tq::Codec& c = plan.codec();
  std::vector<uint8_t> raw;
  const std::vector<float> x = test_rows(c, D, size_t(n) * Hkv, dt, rng, raw);
  // Slots: distinct, shuffled (or contiguous), every 10th token padding (-1), and the last one.
  std::vector<int32_t> slots(num_pages * PT);
  std::iota(slots.begin(), slots.end(), contiguous ? int(rng() % 200) : 0);
  if (!contiguous) std::shuffle(slots.begin(), slots.end(), rng);
  slots.resize(n);
  for (int i = 3; i < n; i += 10) slots[i] = -1;
  if (n > 1) slots[n - 1] = -1;  // padding at the tail of the last tile too
  // Expected pool: the poison, with the CPU encoder's bytes where the GPU must write.
  const size_t pool_bytes = size_t(num_pages) * L.page_bytes();
  std::vector<uint8_t> expect(pool_bytes, 0xAB), code(c.code_size()), codes(D);
  for (int i = 0; i < n; ++i) {
    if (slots[i] < 0) continue;
    const int page = slots[i] / PT, off = slots[i] % PT;
    for (int h = 0; h < Hkv; ++h) {
      c.encode(&x[(size_t(i) * Hkv + h) * D], 1, D, code.data());
      uint8_t* pg = expect.data() + size_t(page) * L.page_bytes();
      if (quads) {  // only the token's own bits of its 16-token block; the rest keeps the poison
        const int b = int(L.quad_bits);
        for (int j = 0; j < D; ++j) codes[j] = uint8_t(tq::unpack_code_ref(code.data(), uint32_t(D), b, uint32_t(j)));
        tq::quad_put_token(codes.data(), uint32_t(D), b, off % 16, pg + L.codes_offset(h, off - off % 16));
      } else {
        std::copy_n(code.data(), L.codes_bytes, pg + L.codes_offset(h, off));
      }
      std::copy_n(code.data() + L.codes_bytes, L.scalar_bytes, pg + L.scalars_offset(h, off));
    }
  }
  void *dx, *ds, *dp;
  CK(cudaMalloc(&dx, raw.size()));
  CK(cudaMalloc(&ds, slots.size() * 4));
  CK(cudaMalloc(&dp, pool_bytes));
  CK(cudaMemcpy(dx, raw.data(), raw.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(ds, slots.data(), slots.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemset(dp, 0xAB, pool_bytes));
  plan.run(dx, static_cast<int32_t*>(ds), n, static_cast<uint8_t*>(dp), nullptr);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  EXPECT_EQ(plan.read_error_flag(), 0);
  std::vector<uint8_t> got(pool_bytes);
  CK(cudaMemcpy(got.data(), dp, pool_bytes, cudaMemcpyDeviceToHost));
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < pool_bytes; ++i)
    if (got[i] != expect[i] && bad++ == 0) first = i;
  EXPECT_EQ(bad, 0u) << "bytes differing from the CPU encoder (first at " << first << ": got " << int(got[first])
                     << ", want " << int(expect[first]) << ")";
  // A slot beyond the pool is flagged and not written.
  const int32_t beyond = num_pages * PT;
  CK(cudaMemcpy(ds, &beyond, 4, cudaMemcpyHostToDevice));
  plan.run(dx, static_cast<int32_t*>(ds), 1, static_cast<uint8_t*>(dp), nullptr);
  CK(cudaDeviceSynchronize());
  EXPECT_EQ(plan.read_error_flag(), 1);
  for (void* p : {dx, ds, dp}) cudaFree(p);
}

// tq5..tq8 helpers of the tiled kernel, on the CPU (no GPU needed): the binary search is
// Codebook::quantize on random values, on every boundary and its float neighbours, on +-0, +-inf and
// NaN; the plane packing of one code at a time is layout.h's pack_codes_ref.
template <int BITS>
void check_wide_helpers(std::mt19937& rng) {
  for (int d : {64, 128, 256}) {
    const tq::Codebook& cb = tq::Codebook::get(d, BITS);
    const std::vector<float> b(cb.boundaries().begin(), cb.boundaries().end());
    ASSERT_EQ(b.size(), (size_t(1) << BITS) - 1);
    std::vector<float> us = {0.f, -0.f, INFINITY, -INFINITY, NAN, 1.f, -1.f};
    for (float x : b) us.insert(us.end(), {x, std::nextafter(x, -INFINITY), std::nextafter(x, INFINITY)});
    std::normal_distribution<float> nd(0.f, 1.f / std::sqrt(float(d)));
    for (int i = 0; i < 2000; ++i) us.push_back(nd(rng));
    for (float u : us) ASSERT_EQ(tq::cuda::append::search_wide<BITS>(u, b.data()), cb.quantize(u)) << "d " << d << " u " << u;
  }
  for (int rep = 0; rep < 50; ++rep) {
    uint8_t codes[32], ref[4 * BITS];
    uint32_t w[BITS] = {};
    for (int e = 0; e < 32; ++e) {
      codes[e] = uint8_t(rng() % (1u << BITS));
      tq::cuda::append::pack_code<BITS>(w, e, codes[e]);
    }
    tq::pack_codes_ref(codes, 32, BITS, ref);
    ASSERT_EQ(std::memcmp(w, ref, sizeof ref), 0) << "bits " << BITS;
  }
}
// The fractional kernel's compile-time split (append_params.h frac_hi / frac_dense) against the CPU
// codec's parts, for every (D, bits) with a kernel (the plan checks the same, on a GPU only; tq2.5
// at 64: append_frac64's split, checked here and below).
TEST(CudaAppendHost, FractionalSplitIsTheCodecs) {
  for (int D : {64, 128, 256})
    for (int B = 1; B <= 7; ++B) {
      const std::string name = "tq" + std::to_string(B) + ".5";
      const auto codec = tq::Codec::create(tq::parse_codec(name), D);
      const auto& t = dynamic_cast<const tq::TqCodec&>(*codec);
      ASSERT_EQ(t.parts().size(), 2u) << name;
      EXPECT_EQ(tq::cuda::append::frac_hi(D, B), int(t.parts()[0].channels.size())) << name << " D " << D;
      EXPECT_EQ(t.parts()[0].cb->centroids().size(), size_t(1) << (B + 1)) << name;
      EXPECT_EQ(t.parts()[1].cb->centroids().size(), size_t(1) << B) << name;
      EXPECT_EQ(tq::cuda::append::frac_dense(D, B), t.parts()[1].rot->kind() == tq::RotationKind::kDense) << name << " D " << D;
      EXPECT_EQ(t.parts()[0].rot->kind(), tq::RotationKind::kHadamard) << name << " D " << D;
    }
}

// The fractional prod kernel's compile-time layout (append_params.h fprod_layout: layout.h's
// make_tq_layout of the fractional split) against the CPU codec's, for every (D, rate) with a kernel.
TEST(CudaAppendHost, FractionalProdLayoutIsTheCodecs) {
  for (int D : {64, 128, 256})
    for (int B = 1; B <= 7; ++B) {
      const std::string name = "tq" + std::to_string(B) + ".5p";
      const auto codec = tq::Codec::create(tq::parse_codec(name), D);
      const auto& t = dynamic_cast<const tq::TqCodec&>(*codec);
      const tq::TqLayout& L = *t.tq_layout();
      const tq::TqLayout K = tq::cuda::append::fprod_layout(D, B);
      ASSERT_TRUE(L.prod && L.n_parts == 2 && K.n_parts == 2) << name;
      EXPECT_EQ(K.codes_bytes, L.codes_bytes) << name << " D " << D;
      EXPECT_EQ(K.scalar_bytes, L.scalar_bytes) << name << " D " << D;
      for (int p = 0; p < 2; ++p) {
        EXPECT_EQ(K.part[p].dim, L.part[p].dim) << name << " D " << D << " part " << p;
        EXPECT_EQ(K.part[p].mse_bits, L.part[p].mse_bits) << name << " part " << p;
        EXPECT_EQ(K.part[p].mse_offset, L.part[p].mse_offset) << name << " part " << p;
        EXPECT_EQ(K.part[p].qjl_offset, L.part[p].qjl_offset) << name << " part " << p;
        EXPECT_EQ(K.part[p].norm_offset, L.part[p].norm_offset) << name << " part " << p;
        EXPECT_EQ(K.part[p].gamma_offset, L.part[p].gamma_offset) << name << " part " << p;
        for (int j = 0; j < int(L.part[p].dim); ++j) ASSERT_EQ(t.parts()[p].channels[j], int(L.part[p].first) + j);
      }
      EXPECT_EQ(int(L.part[0].mse_bits), B) << name;
      EXPECT_EQ(tq::cuda::append::frac_dense(D, B), t.parts()[1].rot->kind() == tq::RotationKind::kDense) << name << " D " << D;
      EXPECT_EQ(t.parts()[0].rot->kind(), tq::RotationKind::kHadamard) << name << " D " << D;
      EXPECT_EQ(int(t.parts()[1].sketch.size()), int(L.part[1].dim * L.part[1].dim)) << name;
    }
}

// tq2.5 / tq2.5p at head_dim 64 (append_frac64.h): the encoder the one-thread-per-vector kernel runs,
// compiled for the host, against TqCodec::encode byte for byte (codes and fp16 scalars): several
// seeds, odd row counts, the rows of run_append (Gaussian at scales 1e-3 .. 1e2, rows on the codebook
// boundaries, prod rows with residuals orthogonal to sketch rows) in f32 and f16 / bf16 rounding, and
// vectors with a zero part. (The device build differs only in its intrinsics: __fmul_rn for *,
// __fmaf_rn for std::fma, __float2half_rn for float_to_half.)
template <bool PROD>
void check_frac64(const std::string& name, tq::cuda::DType dt, size_t rows, std::mt19937& rng) {
  namespace ap = tq::cuda::append;
  SCOPED_TRACE(testing::Message() << "codec=" << name << " dtype=" << int(dt) << " rows=" << rows);
  const auto codec = tq::Codec::create(tq::parse_codec(name), 64);
  const auto& t = dynamic_cast<const tq::TqCodec&>(*codec);
  ASSERT_STREQ(ap::frac64_check(t, PROD), "");
  using Tab = std::conditional_t<PROD, ap::Frac64ProdTables, ap::Frac64MseTables>;
  auto tab = std::make_unique<Tab>();
  ap::frac64_tables(t, *tab);
  std::vector<uint8_t> raw;
  std::vector<float> x = test_rows(t, 64, rows, dt, rng, raw);
  ASSERT_GE(rows, 3u);
  for (int j = 0; j < 64; ++j) x[j] = 0.f;                // all zero
  for (int j = 0; j < 16; ++j) x[64 + j] = 0.f;           // part 0 zero
  for (int j = 16; j < 64; ++j) x[128 + j] = 0.f;         // part 1 zero
  const size_t cs = t.code_size();
  ASSERT_EQ(cs, PROD ? 26u : 22u);
  std::vector<uint8_t> want(cs), got(cs);
  size_t bad = 0;
  for (size_t r = 0; r < rows; ++r) {
    t.encode(&x[r * 64], 1, 64, want.data());
    float xr[64];
    std::copy_n(&x[r * 64], 64, xr);
    uint32_t w[5];
    uint16_t sc[PROD ? 4 : 2];
    bool ok;
    if constexpr (PROD) ok = ap::frac64_encode_prod(xr, *tab, w, sc);
    else ok = ap::frac64_encode_mse(xr, *tab, w, sc);
    EXPECT_TRUE(ok) << "row " << r;
    EXPECT_EQ(w[4] >> 16, 0u) << "row " << r << ": bits beyond the 18-byte codes section";
    std::memcpy(got.data(), w, 18);
    std::memcpy(got.data() + 18, sc, sizeof sc);
    if (got != want && bad++ < 3) {
      size_t i = 0;
      while (got[i] == want[i]) ++i;
      ADD_FAILURE() << "row " << r << " (row % 4 = " << r % 4 << "): byte " << i << " got " << int(got[i]) << ", want "
                    << int(want[i]);
    }
  }
  EXPECT_EQ(bad, 0u) << "rows differing from TqCodec::encode";
}

TEST(CudaAppendHost, Frac64EncoderMatchesCpuCodec) {
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  for (const char* seed : {"", ":seed=7", ":seed=123456789"}) {
    check_frac64<false>(std::string("tq2.5") + seed, DType::kF32, 1001, rng);
    check_frac64<true>(std::string("tq2.5p") + seed, DType::kF32, 1001, rng);
  }
  check_frac64<false>("tq2.5", DType::kF16, 333, rng);
  check_frac64<false>("tq2.5:seed=3", DType::kBF16, 333, rng);
  check_frac64<true>("tq2.5p", DType::kBF16, 333, rng);
  check_frac64<true>("tq2.5p:seed=3", DType::kF16, 333, rng);
}

// Norms beyond fp16 are reported (the kernel flags them; the CPU encoder throws).
TEST(CudaAppendHost, Frac64FlagsNormsBeyondFp16) {
  namespace ap = tq::cuda::append;
  for (const bool prod : {false, true}) {
    const auto codec = tq::Codec::create(tq::parse_codec(prod ? "tq2.5p" : "tq2.5"), 64);
    const auto& t = dynamic_cast<const tq::TqCodec&>(*codec);
    float x[64];
    for (int p = 0; p < 2; ++p) {
      for (int j = 0; j < 64; ++j) x[j] = 1.f;
      x[p == 0 ? 5 : 40] = 70000.f;
      uint32_t w[5];
      if (prod) {
        auto tab = std::make_unique<ap::Frac64ProdTables>();
        ap::frac64_tables(t, *tab);
        uint16_t sc[4];
        EXPECT_FALSE(ap::frac64_encode_prod(x, *tab, w, sc)) << "part " << p;
      } else {
        auto tab = std::make_unique<ap::Frac64MseTables>();
        ap::frac64_tables(t, *tab);
        uint16_t sc[2];
        EXPECT_FALSE(ap::frac64_encode_mse(x, *tab, w, sc)) << "part " << p;
      }
      EXPECT_THROW(t.encode(x, 1, 64, std::vector<uint8_t>(t.code_size()).data()), tq::Error);
    }
  }
}

TEST(CudaAppendHost, WideSearchAndPackMatchTheCpuCodec) {
  TQ_FRESH_RNG(rng);
  check_wide_helpers<5>(rng);
  check_wide_helpers<6>(rng);
  check_wide_helpers<7>(rng);
  check_wide_helpers<8>(rng);
}

TEST(CudaAppend, BitIdenticalToCpuEncoder) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  for (const char* codec : {"tq1", "tq2", "tq3", "tq4", "fp16", "tq3.5", "tq1.5", "tq5p"})
    for (int D : {64, 128, 256}) run_append(codec, D, DType::kF32, rng);
  for (int D : {64, 128, 256}) run_append("tq2.5", D, DType::kF32, rng);
  run_append("tq3", 128, DType::kF16, rng);
  run_append("tq4", 128, DType::kBF16, rng);
}

// The fractional codecs (two parts; tq2.5's part 1 rotates densely; tq1.5: 2 + 1 bits): every supported head_dim and
// input dtype, one vector, a few, tiles of one vector (113 x 3), of 16 (4097 x 8) and the largest
// tiles (10000 x 8: 32 rows at D = 128 from f16, 8 at D = 256 from f32), another seed.
TEST(CudaAppend, FractionalOddShapes) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  const DType dts[] = {DType::kF32, DType::kF16, DType::kBF16};
  int i = 0;
  for (const char* codec : {"tq2.5", "tq3.5", "tq1.5"})
    for (int D : {64, 128, 256}) {
      for (DType dt : dts) run_append(codec, D, dt, rng, 113, 3);
      run_append(codec, D, DType::kF16, rng, 1, 1);
      run_append(codec, D, DType::kBF16, rng, 7, 3);
      run_append(codec, D, dts[i++ % 3], rng, 4097, 8);
    }
  run_append("tq2.5", 128, DType::kF16, rng, 10000, 8);
  run_append("tq3.5", 256, DType::kF32, rng, 10000, 8);
  run_append("tq2.5", 256, DType::kBF16, rng, 8191, 8);
  run_append("tq2.5:seed=7", 128, DType::kF32, rng, 113, 3);
  run_append("tq2.5", 64, DType::kF16, rng, 10000, 8);  // append_frac64: one thread per vector
  run_append("tq2.5:seed=7", 64, DType::kF32, rng, 113, 3);
  run_append("tq3.5:rot=hadamard:seed=9", 64, DType::kF16, rng, 113, 3);
  run_append("tq1.5", 128, DType::kBF16, rng, 10000, 8);
  run_append("tq1.5:seed=7", 256, DType::kF32, rng, 113, 3);
}

// The tiled kernel (v2) at odd counts: one vector, a partial pass, one pass per warp with a
// partial last one (4097 tokens x 8 heads), tiles of 4 passes (10000 x 8 at D = 128 from f16),
// of 16 vectors from f32 and at D = 256 (8191 x 8), every head_dim and input dtype.
TEST(CudaAppend, TiledOddShapes) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  for (int n : {1, 7, 4097}) run_append("tq3", 128, DType::kF16, rng, n, n == 4097 ? 8 : 3);
  run_append("tq3", 128, DType::kF16, rng, 10000, 8);
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (int D : {64, 128, 256}) {
      run_append("tq2", D, dt, rng, 4097, 8);
      run_append("tq4", D, dt, rng, 7, 1);
    }
  run_append("tq4", 256, DType::kF32, rng, 1, 1);
  run_append("tq3", 64, DType::kBF16, rng, 113, 3);
  run_append("tq1", 128, DType::kF16, rng, 4097, 8);
  run_append("tq1", 256, DType::kBF16, rng, 7, 3);
  // Several passes per tile from f32 / at D = 256 (largest tiles of 16 vectors), a short last tile.
  run_append("tq3", 128, DType::kF32, rng, 8191, 8);
  run_append("tq4", 256, DType::kBF16, rng, 8191, 8);
}

// Each codec at every head_dim: tiles of one vector (113 x 3) and a partial pass (7 x 1), the input
// dtypes taken in turn.
void run_every_head_dim(std::initializer_list<const char*> codecs, std::mt19937& rng) {
  const tq::cuda::DType dts[] = {tq::cuda::DType::kF32, tq::cuda::DType::kF16, tq::cuda::DType::kBF16};
  int i = 0;
  for (const char* codec : codecs)
    for (int D : {64, 128, 256}) {
      run_append(codec, D, dts[i++ % 3], rng, 113, 3);
      run_append(codec, D, dts[i % 3], rng, 7, 1);
    }
}

// Fractional wide tq4.5 .. tq7.5 (halves at B + 1 and B bits; parts of 5..8 bits by binary search over
// their boundaries in shared memory, a 4-bit part as tq3.5's): every head_dim and input dtype, one
// vector, a partial tile, tiles of one vector (113 x 3), of 16 (4097 x 8), the largest (10000 x 8).
TEST(CudaAppend, FractionalWideBitIdenticalToCpuEncoder) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  run_every_head_dim({"tq4.5", "tq5.5", "tq6.5", "tq7.5"}, rng);
  run_append("tq4.5", 128, DType::kF16, rng, 1, 1);
  run_append("tq5.5", 256, DType::kF32, rng, 4097, 8);
  run_append("tq6.5", 64, DType::kBF16, rng, 10000, 8);
  run_append("tq7.5", 128, DType::kF32, rng, 4097, 8);
  run_append("tq7.5:seed=11", 256, DType::kBF16, rng, 113, 3);
}

// tq5..tq8 (32..256 centroids: binary search over the boundaries in shared memory, 4 + 1, 4 + 2,
// 4 + 2 + 1 bit planes and the byte plane): every head_dim and input dtype, one vector, a partial
// pass, one pass per warp (4097 x 8), the largest tiles (8191 x 8).
TEST(CudaAppend, WideCodecsBitIdenticalToCpuEncoder) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  run_every_head_dim({"tq5", "tq6", "tq7", "tq8"}, rng);
  run_append("tq8", 128, DType::kF16, rng, 1, 1);
  run_append("tq7", 128, DType::kF16, rng, 4097, 8);
  run_append("tq6", 256, DType::kF32, rng, 8191, 8);
  run_append("tq5", 64, DType::kBF16, rng, 8191, 8);
  run_append("tq8:seed=11", 256, DType::kBF16, rng, 113, 3);
}

// Small tq5..tq8 appends (compute-sanitizer runs this one: .dev_s9/wide_gpu.sh).
TEST(CudaAppend, WideSmallShapes) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  for (const char* codec : {"tq5", "tq6", "tq7", "tq8"}) run_append(codec, 64, tq::cuda::DType::kF16, rng, 7, 2);
}

// TurboQuant-prod (mse at bits - 1, QJL signs of the residual, gamma): every supported head_dim
// and input dtype, one vector, a few, tiles of one vector (113 x 3), of 16 (4097 x 8), and the
// largest tiles with several QJL passes per warp (TQ_CUDA_APPEND_FRAC_VPW=32).
TEST(CudaAppend, ProdBitIdenticalToCpuEncoder) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  const DType dts[] = {DType::kF32, DType::kF16, DType::kBF16};
  int i = 0;
  for (const char* codec : {"tq2p", "tq3p", "tq4p", "tq5p", "tq6p", "tq7p", "tq8p"})  // tq6p+: 5..7-bit mse codes
    for (int D : {64, 128, 256}) {
      for (DType dt : dts) run_append(codec, D, dt, rng, 113, 3);
      run_append(codec, D, dts[i++ % 3], rng, 1, 1);
      run_append(codec, D, dts[i++ % 3], rng, 7, 3);
    }
  run_append("tq3p", 128, DType::kF16, rng, 4097, 8);
  run_append("tq4p", 256, DType::kF32, rng, 2049, 8);
  run_append("tq3p:seed=11", 64, DType::kBF16, rng, 4097, 8);
  run_append("tq2p", 128, DType::kF32, rng, 4097, 8);
  run_append("tq5p", 256, DType::kF16, rng, 2049, 8);
  run_append("tq5p:seed=11", 64, DType::kF32, rng, 4097, 8);
  run_append("tq8p", 128, DType::kBF16, rng, 4097, 8);
  run_append("tq6p:seed=11", 128, DType::kF16, rng, 2049, 8);
  run_append("tq8p", 256, DType::kF32, rng, 2049, 8);
  setenv("TQ_CUDA_APPEND_FRAC_VPW", "32", 1);
  run_append("tq4p", 128, DType::kF32, rng, 113, 3);
  run_append("tq3p", 256, DType::kBF16, rng, 70, 3);
  run_append("tq5p", 128, DType::kBF16, rng, 113, 3);
  unsetenv("TQ_CUDA_APPEND_FRAC_VPW");
}

// Fractional prod tq1.5p .. tq7.5p (two parts, each a prod: mse codes, QJL signs with its own
// sketch, norm and gamma; tq2.5p's dense part 1 in double; tq1.5p's part 1 without mse codes;
// tq5.5p .. tq7.5p's 5..7-bit parts by search_wide): every supported head_dim and input dtype,
// one vector, a few, tiles of one vector (113 x 3), of 16 (4097 x 8 / 2049 x 8), and the largest
// tiles with several passes per warp (TQ_CUDA_APPEND_FRAC_VPW=32).
TEST(CudaAppend, FractionalProdBitIdenticalToCpuEncoder) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  const DType dts[] = {DType::kF32, DType::kF16, DType::kBF16};
  int i = 0;
  for (const char* codec : {"tq2.5p", "tq3.5p", "tq4.5p", "tq1.5p", "tq5.5p", "tq6.5p", "tq7.5p"})
    for (int D : {64, 128, 256}) {
      for (DType dt : dts) run_append(codec, D, dt, rng, 113, 3);
      run_append(codec, D, dts[i++ % 3], rng, 1, 1);
      run_append(codec, D, dts[i++ % 3], rng, 7, 3);
    }
  run_append("tq2.5p", 128, DType::kF16, rng, 4097, 8);
  run_append("tq2.5p", 256, DType::kBF16, rng, 2049, 8);
  run_append("tq3.5p", 64, DType::kF32, rng, 4097, 8);
  run_append("tq2.5p", 64, DType::kBF16, rng, 4097, 8);  // append_frac64
  run_append("tq2.5p:seed=11", 64, DType::kF32, rng, 113, 3);
  run_append("tq3.5p:seed=11", 256, DType::kF16, rng, 2049, 8);
  run_append("tq4.5p", 128, DType::kBF16, rng, 4097, 8);
  run_append("tq1.5p", 128, DType::kF16, rng, 4097, 8);
  run_append("tq7.5p:seed=11", 256, DType::kBF16, rng, 2049, 8);
  setenv("TQ_CUDA_APPEND_FRAC_VPW", "32", 1);
  run_append("tq2.5p", 128, DType::kF32, rng, 113, 3);
  run_append("tq2.5p", 256, DType::kF16, rng, 70, 3);
  run_append("tq3.5p", 128, DType::kBF16, rng, 113, 3);
  run_append("tq4.5p", 64, DType::kF32, rng, 13, 3);
  run_append("tq1.5p", 256, DType::kF16, rng, 70, 3);
  run_append("tq6.5p", 128, DType::kBF16, rng, 113, 3);
  unsetenv("TQ_CUDA_APPEND_FRAC_VPW");
}

// Small fractional prod appends for compute-sanitizer (the dense part 1 of tq2.5p, the Hadamard
// halves of tq3.5p), the default tiles and the largest (a partial last pass).
TEST(CudaAppend, FractionalProdSmallShapes) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  run_append("tq2.5p", 128, DType::kF16, rng, 7, 2);
  run_append("tq3.5p", 64, DType::kF32, rng, 7, 2);
  run_append("tq1.5p", 64, DType::kF16, rng, 7, 2);
  run_append("tq7.5p", 128, DType::kF32, rng, 7, 2);
  run_append("tq2.5p", 64, DType::kF16, rng, 7, 2);
  run_append("tq2.5", 64, DType::kF32, rng, 7, 2);
  setenv("TQ_CUDA_APPEND_FRAC_VPW", "32", 1);
  run_append("tq2.5p", 256, DType::kBF16, rng, 13, 3);
  run_append("tq5.5p", 256, DType::kF16, rng, 13, 3);
  unsetenv("TQ_CUDA_APPEND_FRAC_VPW");
}

// Small prod appends for compute-sanitizer (tq2p, tq5p: the narrowest and widest mse codes), the
// default tiles and the largest (several QJL passes per warp, a partial last pass).
TEST(CudaAppend, ProdSmallShapes) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  run_append("tq5p", 128, DType::kF16, rng, 7, 2);
  run_append("tq2p", 64, DType::kF32, rng, 7, 2);
  setenv("TQ_CUDA_APPEND_FRAC_VPW", "32", 1);
  run_append("tq5p", 64, DType::kBF16, rng, 13, 3);
  unsetenv("TQ_CUDA_APPEND_FRAC_VPW");
}

// Small appends in the largest tiles (TQ_CUDA_APPEND_FRAC_VPW=32, clamped to the tile size): several
// dense passes per warp and a partial last tile on shapes small enough for compute-sanitizer.
TEST(CudaAppend, FractionalLargeTilesSmallAppends) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  const DType dts[] = {DType::kF32, DType::kF16, DType::kBF16};
  setenv("TQ_CUDA_APPEND_FRAC_VPW", "32", 1);
  int i = 0;
  for (const char* codec : {"tq2.5", "tq3.5", "tq1.5"})
    for (int D : {64, 128, 256}) {
      run_append(codec, D, dts[i++ % 3], rng, 113, 3);
      run_append(codec, D, dts[i++ % 3], rng, 7, 3);
    }
  unsetenv("TQ_CUDA_APPEND_FRAC_VPW");
}

// V in token quads (token_quads): every tqB, head_dim and input dtype, one token, a few, tiles of one
// and of several passes; 16-token blocks whose tokens other warps write at the same time (shuffled
// slots: atomics); prefills (contiguous slots: whole quads by plain stores, the rest by atomics);
// the v1 kernel too.
TEST(CudaAppend, TokenQuadsBitIdenticalToCpuLayout) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  const DType dts[] = {DType::kF32, DType::kF16, DType::kBF16};
  int i = 0;
  for (const char* codec : {"tq1", "tq2", "tq3", "tq4"})
    for (int D : {64, 128, 256}) {
      run_append(codec, D, dts[i++ % 3], rng, 113, 3, true);
      run_append(codec, D, dts[i++ % 3], rng, 1, 1, true);
    }
  run_append("tq3", 128, DType::kF16, rng, 4097, 8, true);
  run_append("tq2", 256, DType::kF32, rng, 8191, 8, true);
  run_append("tq4", 64, DType::kBF16, rng, 7, 8, true);
  // A prefill: whole quads (4 tokens of one block in one pass: plain stores) beside broken ones.
  for (const char* codec : {"tq1", "tq2", "tq3", "tq4"})
    for (int D : {64, 128, 256}) run_append(codec, D, dts[i++ % 3], rng, D == 128 ? 4097 : 301, 8, true, true);
  run_append("tq3", 128, DType::kF16, rng, 10000, 8, true, true);
  run_append("tq3", 128, DType::kF32, rng, 2, 2, true, true);
  setenv("TQ_CUDA_APPEND_V1", "1", 1);
  for (const char* codec : {"tq1", "tq2", "tq3", "tq4"})
    for (int D : {64, 128, 256}) run_append(codec, D, DType::kF16, rng, D == 128 ? 4097 : 113, 3, true, D == 64);
  unsetenv("TQ_CUDA_APPEND_V1");
}

// The previous kernel (v1), still selectable with TQ_CUDA_APPEND_V1=1 at plan time.
TEST(CudaAppend, V1BitIdenticalToCpuEncoder) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  setenv("TQ_CUDA_APPEND_V1", "1", 1);
  for (const char* codec : {"tq1", "tq2", "tq3", "tq4"}) run_append(codec, 128, tq::cuda::DType::kF16, rng, 4097, 3);
  unsetenv("TQ_CUDA_APPEND_V1");
}

TEST(CudaAppend, UnsupportedFailsAtPlanTime) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  // kUnsupported, and the message names the codec.
  auto status = [](const char* c, int d, int pt = 64, bool quads = false) {
    try {
      tq::cuda::AppendPlan p(tq::parse_codec(c), 8, d, pt, 4, tq::cuda::DType::kF16, quads);
    } catch (const tq::Error& e) {
      if (std::string(c).find(':') == std::string::npos && e.status() == tq::Status::kUnsupported)
        EXPECT_NE(std::string(e.what()).find(c), std::string::npos) << c << ": " << e.what();
      return e.status();
    }
    return tq::Status::kOk;
  };
  for (const char* c : {"tq6p:norm=fp32", "tq8p:rot=dense", "tq8:norm=fp32", "tq3p:norm=fp32", "tq4p:rot=dense", "tq5p:norm=fp32", "q8",
                        "tq4.5:norm=fp32", "tq7.5:rot=dense", "tq1.5p:norm=fp32", "tq7.5p:rot=dense", "tq3.5p:norm=fp32", "tq2.5p:rot=dense", "tq3.5:norm=fp32", "tq1.5:norm=fp32", "tq2.5:rot=dense", "tq3.5:rot=dense",
                        "tq1.5:rot=dense"})
    EXPECT_EQ(status(c, 128), tq::Status::kUnsupported) << c;
  EXPECT_EQ(status("tq2.5", 64), tq::Status::kOk);   // parts of 16 + 48 dims: append_frac64
  EXPECT_EQ(status("tq2.5p", 64), tq::Status::kOk);  // the same split
  EXPECT_EQ(status("tq2.5:rot=dense", 64), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq2.5p:rot=dense", 64), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq2.5:norm=fp32", 64), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq2.5", 96), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq2.5p", 32), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq2.5p", 128), tq::Status::kOk);
  EXPECT_EQ(status("tq2.5p", 256), tq::Status::kOk);
  EXPECT_EQ(status("tq3.5p", 64), tq::Status::kOk);
  EXPECT_EQ(status("tq4.5p", 256), tq::Status::kOk);
  EXPECT_EQ(status("tq1.5p", 64), tq::Status::kOk);  // part 1 without mse codes
  EXPECT_EQ(status("tq5.5p", 128), tq::Status::kOk);  // 5..7-bit mse parts
  EXPECT_EQ(status("tq7.5p", 256), tq::Status::kOk);
  EXPECT_EQ(status("tq3.5p", 96), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq6p", 256), tq::Status::kOk);  // 40 .. 56 words of mse codes per vector: lanes store several
  EXPECT_EQ(status("tq8p", 256), tq::Status::kOk);
  EXPECT_EQ(status("tq6p", 128), tq::Status::kOk);
  EXPECT_EQ(status("tq8p", 64), tq::Status::kOk);
  EXPECT_EQ(status("tq3.5", 96), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq3", 96), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq2.5", 128), tq::Status::kOk);
  EXPECT_EQ(status("tq3.5", 64), tq::Status::kOk);
  EXPECT_EQ(status("tq1.5", 64), tq::Status::kOk);
  EXPECT_EQ(status("tq1.5", 256), tq::Status::kOk);
  EXPECT_EQ(status("tq1.5", 96), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq4.5", 64), tq::Status::kOk);
  EXPECT_EQ(status("tq5.5", 128), tq::Status::kOk);
  EXPECT_EQ(status("tq7.5", 256), tq::Status::kOk);
  EXPECT_EQ(status("tq6.5", 96), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq5p", 64), tq::Status::kOk);
  EXPECT_EQ(status("tq5p", 256), tq::Status::kOk);
  EXPECT_EQ(status("tq5p", 96), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq7p", 96), tq::Status::kUnsupported);
  EXPECT_EQ(status("tq3p", 128), tq::Status::kOk);
  EXPECT_EQ(status("tq4p", 64), tq::Status::kOk);
  EXPECT_EQ(status("tq2p", 256), tq::Status::kOk);
  EXPECT_EQ(status("tq1", 64), tq::Status::kOk);
  EXPECT_EQ(status("tq5", 64), tq::Status::kOk);
  EXPECT_EQ(status("tq8", 256), tq::Status::kOk);
  EXPECT_EQ(status("tq6", 96), tq::Status::kUnsupported);
  setenv("TQ_CUDA_APPEND_V1", "1", 1);  // v1 has no tq5..tq8 kernel
  EXPECT_EQ(status("tq7", 128), tq::Status::kUnsupported);
  unsetenv("TQ_CUDA_APPEND_V1");
  EXPECT_EQ(status("tq3p", 96), tq::Status::kUnsupported);
  // Token quads: single-part tq1..tq4 only, pages of whole 16-token blocks.
  for (const char* c : {"fp16", "tq1.5", "tq2.5", "tq3.5", "tq3p", "tq2p", "tq5p", "tq5", "tq8", "tq4.5", "tq3.5p"})
    EXPECT_EQ(status(c, 128, 64, true), tq::Status::kUnsupported) << c;
  EXPECT_EQ(status("tq3", 128, 40, true), tq::Status::kInvalidArgument);
  EXPECT_EQ(status("tq3", 128, 48, true), tq::Status::kOk);
  EXPECT_EQ(status("tq1", 64, 64, true), tq::Status::kOk);
}

}  // namespace

#else
TEST(CudaAppend, SkippedWithoutCuda) { GTEST_SKIP() << "built without CUDA (TQ_ENABLE_CUDA=OFF)"; }
#endif
