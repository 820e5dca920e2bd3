// FlatIndex properties: the SIMD scan equals its scalar reference; search equals brute force over
// decoded vectors (exact_adc) for every layout, metric, odd shape and thread count; re-ranking all
// candidates gives the exact answer; recall rises with bits; remove/reset/save/load keep results;
// bad input throws and leaves the index unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <random>
#include <set>

#include "index/fast_scan.h"
#include "index/scan_layout.h"
#include "turboquant/codebook.h"
#include "turboquant/error.h"
#include "turboquant/index.h"
#include "turboquant/rotation.h"
#include "turboquant/tq_codec.h"

namespace {

uint64_t fresh_seed() {
  static const uint64_t s = std::random_device{}();
  return s;
}

// Gaussian rows; scale varies per row so norms matter (ranking by inner product is not by angle).
std::vector<float> gaussian(size_t n, int d, uint64_t seed, bool vary_scale = true) {
  tq::Rng r(seed);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i) {
    const double s = vary_scale ? 0.5 + r.uniform() : 1.0;
    for (int j = 0; j < d; ++j) x[i * d + j] = float(r.normal() * s);
  }
  return x;
}

std::string tmp_path(const std::string& name) { return testing::TempDir() + "tq_index_" + name; }

TEST(FastScan, SimdEqualsScalarReference) {
  SCOPED_TRACE(testing::Message() << "seed " << fresh_seed() << " target " << tq::index::scan_target_name());
  std::mt19937_64 g(fresh_seed());
  for (int ncols : {4, 8, 28, 100, 256, 260, 772}) {
    const size_t nb = 5, bb = size_t(ncols) * 16;
    std::vector<uint8_t> blocks(nb * bb), lut(bb);
    for (auto& v : blocks) v = uint8_t(g());
    for (auto& v : lut) v = uint8_t(g());
    for (int c0 : {0, 4}) {
      if (c0 >= ncols) continue;
      std::vector<uint32_t> a(nb * 32, 7), b(nb * 32, 7);
      tq::index::scan_nibbles(blocks.data(), nb, bb, c0, ncols, lut.data(), a.data());
      tq::index::scan_nibbles_ref(blocks.data(), nb, bb, c0, ncols, lut.data(), b.data());
      EXPECT_EQ(a, b) << "ncols " << ncols << " c0 " << c0;
    }
  }
}

TEST(ScanLayout, PackUnpackRoundTripsEveryGeometry) {
  std::mt19937_64 g(fresh_seed());
  for (const char* s : {"tq1", "tq2", "tq3", "tq4", "tq2.5", "tq3.5", "tq6"})
    for (int d : {7, 33, 100}) {
      auto c = std::dynamic_pointer_cast<const tq::TqCodec>(tq::Codec::create(tq::parse_codec(s), d));
      const auto geo = tq::index::ScanGeometry::make(*c->tq_layout());
      const size_t n = 75;
      std::vector<uint8_t> codes(n * d), back(d);
      for (size_t i = 0; i < n; ++i)
        for (int p = 0; p < geo.n_parts; ++p)
          for (int j = 0; j < geo.part[p].dim; ++j)
            codes[i * d + geo.part[p].first + j] = uint8_t(g() % (1u << geo.part[p].bits));
      std::vector<uint8_t> blocks(3 * geo.block_bytes(), 0);
      tq::index::pack_into_blocks(geo, codes.data(), 3, 0, blocks.data());       // one by one
      tq::index::pack_into_blocks(geo, codes.data() + 3 * d, 29, 3, blocks.data());
      tq::index::pack_into_blocks(geo, codes.data() + 32 * d, 43, 32, blocks.data());  // whole block path
      for (size_t i = 0; i < n; ++i) {
        tq::index::unpack_slot(geo, blocks.data(), i, back.data());
        ASSERT_TRUE(std::equal(back.begin(), back.end(), codes.begin() + i * d)) << s << " d=" << d << " slot " << i;
      }
    }
}

// Search with exact_adc must return what brute force over the decoded vectors returns: same
// distances (fp32 vs double) and the same labels except where two distances tie within tolerance.
void expect_matches_reference(const tq::FlatIndex& idx, const std::vector<float>& q, size_t nq, int k, int threads,
                              const std::string& what) {
  const int d = idx.dim();
  std::vector<float> D(nq * k), Dr(nq * k);
  std::vector<int64_t> L(nq * k), Lr(nq * k);
  tq::SearchParams p;
  p.exact_adc = true;
  p.threads = threads;
  idx.search(q.data(), nq, d, k, D.data(), L.data(), p);
  idx.search_reference(q.data(), nq, d, k, Dr.data(), Lr.data());
  for (size_t i = 0; i < nq * k; ++i) {
    const double tol = 2e-5 * (1.0 + std::fabs(Dr[i])) * std::sqrt(double(d));
    ASSERT_NEAR(D[i], Dr[i], tol) << what << " result " << i;
    if (L[i] != Lr[i]) {  // allowed only for a tie: the reference's own distance for L[i] must be equal
      const size_t row = i / k;
      bool tie = false;
      for (int j = 0; j < k; ++j)
        if (Lr[row * k + j] == L[i] && std::fabs(Dr[row * k + j] - Dr[i]) <= tol) tie = true;
      if (!tie) {
        for (int j = 0; j < k; ++j) tie = tie || std::fabs(D[i] - Dr[row * k + k - 1]) <= tol;
      }
      EXPECT_TRUE(tie) << what << " result " << i << ": label " << L[i] << " vs " << Lr[i];
    }
  }
}

TEST(FlatIndex, ExactAdcEqualsBruteForceOverDecodedVectors) {
  SCOPED_TRACE(testing::Message() << "seed " << fresh_seed());
  struct Case { int d; size_t n; };
  for (const Case cs : {Case{7, 301}, Case{100, 1037}, Case{128, 555}, Case{1536, 97}})
    for (const char* desc : {"TQ1", "TQ2", "TQ3", "TQ4", "TQ2.5", "TQ3.5", "TQ6", "TQ4:rot=dense:norm=fp32", "TQ3,nc",
                             "TQ2.5,nc"})
      for (tq::Metric m : {tq::Metric::kInnerProduct, tq::Metric::kL2}) {
        if (cs.d < 8 && std::string(desc).find(".5") != std::string::npos) continue;
        if (cs.d == 1536 && std::string(desc) != "TQ4" && std::string(desc) != "TQ2.5,nc") continue;  // time
        tq::FlatIndex idx(cs.d, desc, m);
        const auto x = gaussian(cs.n, cs.d, fresh_seed() + cs.d);
        idx.add(x.data(), cs.n, cs.d);
        const size_t nq = 9;
        const auto q = gaussian(nq, cs.d, fresh_seed() * 3 + cs.d);
        const int k = int(std::min<size_t>(10, cs.n));
        const std::string what = std::string(desc) + " d=" + std::to_string(cs.d) + " " + tq::metric_name(m);
        expect_matches_reference(idx, q, nq, k, 1, what);
        expect_matches_reference(idx, q, 1, k, 2, what + " split");  // one query: database split
      }
}

TEST(FlatIndex, DefaultSearchAgreesWithExactAdc) {
  const int d = 100;
  const size_t n = 5000, nq = 50;
  tq::FlatIndex idx(d, "TQ4");
  const auto x = gaussian(n, d, fresh_seed());
  idx.add(x.data(), n, d);
  const auto q = gaussian(nq, d, fresh_seed() + 1);
  std::vector<float> D(nq * 10), De(nq * 10);
  std::vector<int64_t> L(nq * 10), Le(nq * 10);
  idx.search(q.data(), nq, d, 10, D.data(), L.data());
  tq::SearchParams ex;
  ex.exact_adc = true;
  idx.search(q.data(), nq, d, 10, De.data(), Le.data(), ex);
  size_t same = 0;
  for (size_t i = 0; i < L.size(); ++i) same += L[i] == Le[i];
  EXPECT_GE(double(same), 0.99 * L.size());
}

TEST(FlatIndex, SameResultsForAnyThreadCount) {
  const int d = 100;
  const size_t n = 3001, nq = 7;
  tq::FlatIndex idx(d, "TQ3.5");
  const auto x = gaussian(n, d, fresh_seed() + 5);
  idx.add(x.data(), n, d);
  const auto q = gaussian(nq, d, fresh_seed() + 6);
  std::vector<float> D1(nq * 5), D(nq * 5);
  std::vector<int64_t> L1(nq * 5), L(nq * 5);
  tq::SearchParams p;
  p.threads = 1;
  idx.search(q.data(), nq, d, 5, D1.data(), L1.data(), p);
  for (int t : {2, 3, 16}) {
    p.threads = t;
    idx.search(q.data(), nq, d, 5, D.data(), L.data(), p);
    EXPECT_EQ(L, L1) << t;
    EXPECT_EQ(D, D1) << t;
    for (size_t i = 0; i < nq; ++i) {  // one query at a time: the database-split path
      idx.search(q.data() + i * d, 1, d, 5, D.data(), L.data(), p);
      EXPECT_TRUE(std::equal(L.begin(), L.begin() + 5, L1.begin() + i * 5)) << t;
    }
  }
}

// Ground truth in double over the original vectors.
std::vector<int64_t> exact_knn(const std::vector<float>& x, size_t n, const std::vector<float>& q, size_t nq, int d,
                               int k, bool l2) {
  std::vector<int64_t> out(nq * k);
  std::vector<std::pair<double, int64_t>> s(n);
  for (size_t i = 0; i < nq; ++i) {
    for (size_t j = 0; j < n; ++j) {
      double v = 0;
      for (int t = 0; t < d; ++t) {
        const double a = q[i * d + t], b = x[j * d + t];
        v += l2 ? -(a - b) * (a - b) : a * b;
      }
      s[j] = {-v, int64_t(j)};
    }
    std::partial_sort(s.begin(), s.begin() + k, s.end());
    for (int t = 0; t < k; ++t) out[i * k + t] = s[t].second;
  }
  return out;
}

TEST(FlatIndex, RerankingEverythingIsExact) {
  const int d = 33;
  const size_t n = 500, nq = 20;
  const auto x = gaussian(n, d, fresh_seed() + 9), q = gaussian(nq, d, fresh_seed() + 10);
  for (tq::Metric m : {tq::Metric::kInnerProduct, tq::Metric::kL2}) {
    tq::FlatIndex idx(d, "TQ2,rerank500", m);
    idx.add(x.data(), n, d);
    std::vector<float> D(nq * 5);
    std::vector<int64_t> L(nq * 5);
    idx.search(q.data(), nq, d, 5, D.data(), L.data());
    EXPECT_EQ(L, exact_knn(x, n, q, nq, d, 5, m == tq::Metric::kL2)) << tq::metric_name(m);
  }
}

TEST(FlatIndex, RecallRisesWithBits) {
  SCOPED_TRACE(testing::Message() << "seed " << fresh_seed());
  // recall@1@1 (is the returned best the true nearest): @10 saturates at 4 bits on this data.
  const int d = 64, k = 1;
  const size_t n = 4000, nq = 300;
  const auto x = gaussian(n, d, fresh_seed() + 11, false), q = gaussian(nq, d, fresh_seed() + 12, false);
  const auto gt = exact_knn(x, n, q, nq, d, 1, false);
  double prev = -1;
  for (const char* desc : {"TQ1", "TQ2", "TQ3", "TQ4", "TQ6"}) {
    tq::FlatIndex idx(d, desc);
    idx.add(x.data(), n, d);
    std::vector<float> D(nq * k);
    std::vector<int64_t> L(nq * k);
    idx.search(q.data(), nq, d, k, D.data(), L.data());
    size_t hit = 0;
    for (size_t i = 0; i < nq; ++i)
      for (int j = 0; j < k; ++j) hit += L[i * k + j] == gt[i];
    const double recall = double(hit) / nq;
    if (std::string(desc) == "TQ6") EXPECT_GE(recall, prev) << desc; else EXPECT_GT(recall, prev) << desc;
    prev = recall;
  }
  // TQ6 over 120 fresh seeds: median 0.943, min 0.900, 5th percentile 0.920; 300 queries give a
  // binomial sd of 0.014. 0.85 is 6 sd under the median (0.9 failed CI once at exactly 0.900) and
  // above every TQ4 recall seen (max 0.840).
  EXPECT_GT(prev, 0.85);
}

// The mse reconstruction shrinks inner products by about (1 - D) (D: distortion); with norm
// correction the code score's regression slope on the true inner product is 1.
TEST(FlatIndex, NormCorrectionRemovesShrinkage) {
  const int d = 128, n = 2000;
  const auto x = gaussian(n, d, fresh_seed() + 21), q = gaussian(1, d, fresh_seed() + 22);
  for (const char* desc : {"TQ2", "TQ2,nc"}) {
    tq::FlatIndex idx(d, desc);
    idx.add(x.data(), n, d);
    std::vector<float> D(n);
    std::vector<int64_t> L(n);
    idx.search(q.data(), 1, d, n, D.data(), L.data());
    double sxy = 0, sxx = 0;
    for (int i = 0; i < n; ++i) {
      double t = 0;
      for (int j = 0; j < d; ++j) t += double(q[j]) * x[size_t(L[i]) * d + j];
      sxy += t * D[i];
      sxx += t * t;
    }
    const double slope = sxy / sxx, dist = tq::Codebook::get(d, 2).distortion();
    if (std::string(desc) == "TQ2") EXPECT_NEAR(slope, 1 - dist, 0.03) << desc;
    else EXPECT_NEAR(slope, 1.0, 0.03) << desc;
  }
}

TEST(FlatIndex, AnyScaleSameRanking) {
  const int d = 100;
  const size_t n = 800;
  const auto x = gaussian(n, d, fresh_seed() + 13), q = gaussian(3, d, fresh_seed() + 14);
  std::vector<int64_t> ref;
  // Powers of two scale norms exactly (fp16 too), so the ranking must not change at all.
  for (float scale : {1.f, 0x1p-10f, 0x1p8f}) {
    std::vector<float> xs(x);
    for (auto& v : xs) v *= scale;
    tq::FlatIndex idx(d, "TQ4");
    idx.add(xs.data(), n, d);
    std::vector<float> D(30);
    std::vector<int64_t> L(30);
    idx.search(q.data(), 3, d, 10, D.data(), L.data());
    // Norms are stored in fp16, whose relative rounding differs with the scale: near-ties may swap,
    // so require the same top-10 up to one boundary exchange per query.
    if (ref.empty()) {
      ref = L;
    } else {
      for (int qi = 0; qi < 3; ++qi) {
        int common = 0;
        for (int a = 0; a < 10; ++a)
          for (int b2 = 0; b2 < 10; ++b2) common += L[qi * 10 + a] == ref[qi * 10 + b2];
        EXPECT_GE(common, 9) << "scale " << scale << " query " << qi;
      }
    }
  }
}

TEST(FlatIndex, RemoveResetAndLabels) {
  const int d = 100;
  const size_t n = 1000;
  const auto x = gaussian(n, d, fresh_seed() + 15), q = gaussian(4, d, fresh_seed() + 16);
  tq::FlatIndex idx(d, "TQ4,rerank20", tq::Metric::kL2);
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = int64_t(i) * 10 + 3;
  idx.add(x.data(), n, d, ids.data());
  std::vector<int64_t> drop;
  for (size_t i = 0; i < n; i += 3) drop.push_back(ids[i]);
  drop.push_back(-77);  // not present
  EXPECT_EQ(idx.remove_ids(drop.data(), drop.size()), (n + 2) / 3);
  EXPECT_EQ(idx.remove_ids(drop.data(), drop.size()), 0u);
  // The same as an index built from the kept vectors only (encoding is per vector).
  tq::FlatIndex fresh(d, "TQ4,rerank20", tq::Metric::kL2);
  std::vector<float> kept;
  std::vector<int64_t> kept_ids;
  for (size_t i = 0; i < n; ++i)
    if (i % 3) {
      kept.insert(kept.end(), x.begin() + i * d, x.begin() + (i + 1) * d);
      kept_ids.push_back(ids[i]);
    }
  fresh.add(kept.data(), kept_ids.size(), d, kept_ids.data());
  ASSERT_EQ(idx.size(), fresh.size());
  std::vector<float> D(40), Df(40);
  std::vector<int64_t> L(40), Lf(40);
  idx.search(q.data(), 4, d, 10, D.data(), L.data());
  fresh.search(q.data(), 4, d, 10, Df.data(), Lf.data());
  EXPECT_EQ(L, Lf);
  EXPECT_EQ(D, Df);
  for (int64_t l : L) EXPECT_NE(l % 30, 3) << "removed label returned";  // removed: i % 3 == 0
  idx.reset();
  EXPECT_EQ(idx.size(), 0u);
  EXPECT_THROW(idx.search(q.data(), 1, d, 1, D.data(), L.data()), tq::Error);
  idx.add(x.data(), 10, d);
  EXPECT_EQ(idx.size(), 10u);
  EXPECT_EQ(idx.ids()[9], 9);
}

TEST(FlatIndex, BadInputThrowsAndLeavesIndexUnchanged) {
  const int d = 100;
  tq::FlatIndex idx(d, "TQ4");
  std::vector<float> D(20);
  std::vector<int64_t> L(20);
  auto x = gaussian(50, d, 17), q = gaussian(2, d, 18);
  EXPECT_THROW(idx.search(q.data(), 1, d, 1, D.data(), L.data()), tq::Error);  // empty
  idx.add(x.data(), 50, d);
  idx.search(q.data(), 2, d, 10, D.data(), L.data());
  const auto L0 = L;
  EXPECT_THROW(idx.add(x.data(), 50, d + 1), tq::Error);          // dimension mismatch
  EXPECT_THROW(idx.search(q.data(), 2, d - 1, 10, D.data(), L.data()), tq::Error);
  EXPECT_THROW(idx.search(q.data(), 2, d, 51, D.data(), L.data()), tq::Error);  // k > size
  EXPECT_THROW(idx.search(q.data(), 2, d, 0, D.data(), L.data()), tq::Error);
  tq::SearchParams p;
  p.rerank = 5;  // no stored vectors
  EXPECT_THROW(idx.search(q.data(), 2, d, 5, D.data(), L.data(), p), tq::Error);
  auto bad = x;
  bad[49 * d + 3] = NAN;
  EXPECT_THROW(idx.add(bad.data(), 50, d), tq::Error);
  bad[49 * d + 3] = 1e6f;  // norm beyond fp16
  EXPECT_THROW(idx.add(bad.data(), 50, d), tq::Error);
  const float q5 = q[5];
  q[5] = INFINITY;
  EXPECT_THROW(idx.search(q.data(), 2, d, 10, D.data(), L.data()), tq::Error);
  q[5] = q5;
  // Labels: INT64_MAX is reserved (no next consecutive label after it), and consecutive labels must
  // not run past it (a fuzzed index file with such a label overflowed next_id before session 3).
  std::vector<int64_t> big_ids(50, 7);
  big_ids[13] = std::numeric_limits<int64_t>::max();
  EXPECT_THROW(idx.add(x.data(), 50, d, big_ids.data()), tq::Error);
  big_ids[13] = std::numeric_limits<int64_t>::max() - 1;  // allowed; the next consecutive add is not
  tq::FlatIndex top(d, "TQ4");
  top.add(x.data(), 50, d, big_ids.data());
  EXPECT_THROW(top.add(x.data(), 1, d), tq::Error);
  EXPECT_EQ(top.size(), 50u);
  EXPECT_EQ(idx.size(), 50u);
  idx.search(q.data(), 2, d, 10, D.data(), L.data());
  EXPECT_EQ(L, L0);
  for (const char* desc : {"", "TQ", "PQ4", "TQ9", "TQ3p", "TQ4,rerank", "TQ4,rerank0", "TQ4,bogus", "TQ4:rot=foo"})
    EXPECT_THROW(tq::FlatIndex(d, desc), tq::Error) << desc;
  EXPECT_THROW(tq::FlatIndex(1, "TQ4"), tq::Error);
  EXPECT_THROW(tq::FlatIndex(4, "TQ2.5"), tq::Error);  // too small to split
  tq::FlatIndex frac(d, "TQ2.5");  // fractional: the NaN batch must not fix the outlier channels
  bad[49 * d + 3] = NAN;
  EXPECT_THROW(frac.add(bad.data(), 50, d), tq::Error);
  EXPECT_EQ(frac.codec(), nullptr);
}

TEST(FlatIndex, DescriptionsRoundTrip) {
  for (const char* desc : {"TQ4", "TQ2,rerank64", "TQ3.5", "TQ4:rot=dense", "TQ1:norm=fp32:seed=7,rerank3", "TQ4,nc"}) {
    const auto s = tq::parse_index_spec(desc);
    EXPECT_EQ(tq::parse_index_spec(s.name()).name(), s.name()) << desc;
  }
  EXPECT_EQ(tq::parse_index_spec("tq2,rerank64").rerank, 64);
}

TEST(FlatIndexIo, SaveLoadRoundTripsAndRefusesDamage) {
  const int d = 100;
  const size_t n = 777;
  const auto x = gaussian(n, d, fresh_seed() + 19), q = gaussian(5, d, fresh_seed() + 20);
  for (const char* desc : {"TQ4", "TQ2.5,rerank16", "TQ6:norm=fp32", "TQ3.5,nc"}) {
    tq::FlatIndex idx(d, desc, tq::Metric::kL2);
    idx.add(x.data(), n, d);
    const int64_t drop[2] = {5, 700};
    idx.remove_ids(drop, 2);
    const std::string path = tmp_path("rt.tqi");
    idx.save(path);
    tq::FlatIndex back = tq::FlatIndex::load(path);
    EXPECT_EQ(back.size(), idx.size());
    EXPECT_EQ(back.spec().name(), idx.spec().name());
    std::vector<float> D(50), Db(50);
    std::vector<int64_t> L(50), Lb(50);
    idx.search(q.data(), 5, d, 10, D.data(), L.data());
    back.search(q.data(), 5, d, 10, Db.data(), Lb.data());
    EXPECT_EQ(L, Lb) << desc;
    EXPECT_EQ(D, Db) << desc;
    // New labels continue after the loaded ones.
    back.add(x.data(), 1, d);
    EXPECT_EQ(back.ids().back(), int64_t(n));

    std::ifstream f(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    {  // The same bytes from memory load the same index; damaged bytes are refused the same way.
      const auto* u = reinterpret_cast<const uint8_t*>(bytes.data());
      tq::FlatIndex mem = tq::FlatIndex::load_from_memory(u, bytes.size());
      mem.search(q.data(), 5, d, 10, Db.data(), Lb.data());
      EXPECT_EQ(L, Lb) << desc;
      EXPECT_EQ(D, Db) << desc;
      EXPECT_THROW(tq::FlatIndex::load_from_memory(u, bytes.size() - 1), tq::Error) << desc;
      EXPECT_THROW(tq::FlatIndex::load_from_memory(u, 7), tq::Error) << desc;
      EXPECT_THROW(tq::FlatIndex::load_from_memory(nullptr, 0), tq::Error) << desc;
    }
    auto write = [&](const std::vector<char>& b) {
      std::ofstream o(path, std::ios::binary | std::ios::trunc);
      o.write(b.data(), std::streamsize(b.size()));
    };
    for (size_t pos : {size_t(0), size_t(9), size_t(20), bytes.size() / 2, bytes.size() - 9, bytes.size() - 1}) {
      auto b = bytes;
      b[pos] ^= 0x10;
      write(b);
      EXPECT_THROW(tq::FlatIndex::load(path), tq::Error) << desc << " flipped byte " << pos;
    }
    for (size_t len : {size_t(0), size_t(7), size_t(30), bytes.size() / 3, bytes.size() - 1}) {
      write(std::vector<char>(bytes.begin(), bytes.begin() + len));
      try {
        tq::FlatIndex::load(path);
        ADD_FAILURE() << desc << " truncated to " << len << " loaded";
      } catch (const tq::Error& e) {
        EXPECT_EQ(e.status(), tq::Status::kIoError) << e.what();
      }
    }
    std::remove(path.c_str());
  }
  EXPECT_THROW(tq::FlatIndex::load(tmp_path("does_not_exist")), tq::Error);
  // An empty index saves and loads too.
  tq::FlatIndex empty(d, "TQ3");
  empty.save(tmp_path("empty.tqi"));
  EXPECT_EQ(tq::FlatIndex::load(tmp_path("empty.tqi")).size(), 0u);
}

}  // namespace
