// The batched mse encoder (TqCodec::encode / encode_unpacked) against the per-vector reference
// (encode_reference): bit-identical where the arithmetic is the same (Hadamard, identity), within
// one cell on boundary cases for dense rotations (fp32 vs double accumulation); identical bytes for
// any thread count and batch split; bad input rejected with nothing written.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "turboquant/codec.h"
#include "turboquant/error.h"
#include "turboquant/pack.h"
#include "turboquant/rotation.h"
#include "turboquant/tq_codec.h"

namespace {

uint64_t fresh_seed() {
  static const uint64_t s = std::random_device{}();
  return s;
}

// Gaussian rows with a spread of scales (norms from ~0.01 to ~100), plus a zero row.
std::vector<float> rows(size_t n, int d, uint64_t seed) {
  tq::Rng r(seed);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i) {
    const double scale = std::pow(10.0, 4.0 * r.uniform() - 2.0) / std::sqrt(double(d));
    for (int j = 0; j < d; ++j) x[i * d + j] = float(r.normal() * scale);
  }
  if (n > 3) std::fill(x.begin() + 3 * d, x.begin() + 4 * d, 0.f);
  return x;
}

std::shared_ptr<const tq::TqCodec> make(const std::string& s, int d) {
  auto c = std::dynamic_pointer_cast<const tq::TqCodec>(tq::Codec::create(tq::parse_codec(s), d));
  if (!c) throw std::runtime_error("not a TqCodec: " + s);
  return c;
}

TEST(BatchEncode, BitIdenticalToReferenceForHadamard) {
  SCOPED_TRACE(testing::Message() << "seed " << fresh_seed());
  for (int d : {64, 128, 1024})
    for (const char* s : {"tq1", "tq2", "tq3", "tq4", "tq8", "tq4:rot=none"}) {
      auto c = make(s, d);
      const size_t n = 301;
      const auto x = rows(n, d, fresh_seed() + d);
      std::vector<uint8_t> a(n * c->code_size()), b(a.size());
      c->encode(x.data(), n, d, a.data());
      c->encode_reference(x.data(), n, d, b.data());
      EXPECT_EQ(a, b) << s << " d=" << d;
    }
}

TEST(BatchEncode, DenseWithinOneCellOfReference) {
  SCOPED_TRACE(testing::Message() << "seed " << fresh_seed());
  for (int d : {7, 100, 1536})
    for (const char* s : {"tq2", "tq4", "tq3.5", "tq6"}) {
      if (d < 8 && std::string(s) == "tq3.5") continue;
      auto c = make(s, d);
      const size_t n = d > 1000 ? 67 : 1001;
      const auto x = rows(n, d, fresh_seed() ^ d);
      std::vector<uint8_t> a(n * d), b(n * d), ref(n * c->code_size());
      std::vector<float> na(n * c->parts().size());
      c->encode_unpacked(x.data(), n, d, a.data(), na.data());
      c->encode_reference(x.data(), n, d, ref.data());
      size_t differ = 0;
      for (size_t i = 0; i < n; ++i) {
        const uint8_t* ri = ref.data() + i * c->code_size();
        for (size_t p = 0; p < c->parts().size(); ++p) {
          const auto& pl = c->tq_layout()->part[p];
          tq::unpack_codes(ri + pl.mse_offset, pl.dim, int(pl.mse_bits), &b[i * d + pl.first]);
          // Norms: same double sum, same rounding -> the value decode reads, exactly.
          EXPECT_EQ(na[i * c->parts().size() + p], c->norm(ri + c->codes_bytes(), int(p)));
        }
      }
      for (size_t k = 0; k < a.size(); ++k) {
        if (a[k] == b[k]) continue;
        ++differ;
        EXPECT_EQ(std::abs(int(a[k]) - int(b[k])), 1) << s << " d=" << d << " at " << k;
      }
      // fp32 vs double accumulation moves a coordinate by ~1e-7 relative: a cell change needs the
      // coordinate within that distance of a boundary, which happens to far fewer than 1 in 1e4.
      EXPECT_LE(double(differ), 1e-4 * double(a.size()) + 1) << s << " d=" << d;
    }
}

TEST(BatchEncode, SameBytesForAnyThreadCountAndSplit) {
  SCOPED_TRACE(testing::Message() << "seed " << fresh_seed());
  for (int d : {100, 128})
    for (const char* s : {"tq4", "tq2.5"}) {
      auto c = make(s, d);
      const size_t n = 1000 + 37;
      const auto x = rows(n, d, fresh_seed() + 7);
      const size_t np = c->parts().size();
      std::vector<uint8_t> a(n * d), b(n * d);
      std::vector<float> na(n * np), nb(n * np);
      c->encode_unpacked(x.data(), n, d, a.data(), na.data(), 1);
      for (int t : {2, 3}) {
        c->encode_unpacked(x.data(), n, d, b.data(), nb.data(), t);
        EXPECT_EQ(a, b) << s << " threads " << t;
        EXPECT_EQ(na, nb);
      }
      // Split into uneven batches: every row encodes alone exactly as in the big batch.
      size_t off = 0;
      for (size_t len : {size_t(1), size_t(63), size_t(65), size_t(500), n - 629}) {
        c->encode_unpacked(x.data() + off * d, len, d, b.data() + off * d, nb.data() + off * np, 2);
        off += len;
      }
      EXPECT_EQ(a, b) << s;
      // A fresh codec object (same seed) gives the same bytes; packing them gives encode's codes.
      std::vector<uint8_t> packed(n * c->code_size());
      make(s, d)->encode(x.data(), n, d, packed.data());
      for (size_t i = 0; i < n; ++i)
        for (size_t p = 0; p < np; ++p) {
          const auto& pl = c->tq_layout()->part[p];
          std::vector<uint8_t> u(pl.dim);
          tq::unpack_codes(packed.data() + i * c->code_size() + pl.mse_offset, pl.dim, int(pl.mse_bits), u.data());
          ASSERT_TRUE(std::equal(u.begin(), u.end(), a.begin() + i * d + pl.first)) << s << " row " << i;
        }
    }
}

TEST(BatchEncode, BadInputWritesNothing) {
  // encode (packed): validates everything before writing. encode_unpacked computes norms in the
  // same pass as encoding (its outputs are scratch), so it may write, but must name the vector.
  const int d = 100;
  auto c = make("tq4", d);
  auto x = rows(300, d, 5);
  x[250 * d + 17] = NAN;
  std::vector<uint8_t> packed(300 * c->code_size(), 0xAB);
  try {
    c->encode(x.data(), 300, d, packed.data());
    FAIL() << "NaN accepted";
  } catch (const tq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("vector 250"), std::string::npos) << e.what();
  }
  for (auto v : packed) ASSERT_EQ(v, 0xAB);
  std::vector<uint8_t> codes(300 * d, 0xAB);
  std::vector<float> norms(300, -1.f);
  for (int threads : {1, 2}) {
    try {
      c->encode_unpacked(x.data(), 300, d, codes.data(), norms.data(), threads);
      FAIL() << "NaN accepted";
    } catch (const tq::Error& e) {
      EXPECT_NE(std::string(e.what()).find("vector 250"), std::string::npos) << e.what();
    }
  }
  x[250 * d + 17] = 1e5f;  // finite, but the norm overflows fp16
  EXPECT_THROW(c->encode_unpacked(x.data(), 300, d, codes.data(), norms.data()), tq::Error);
  EXPECT_THROW(c->encode_unpacked(x.data(), 300, d - 1, codes.data(), norms.data()), tq::Error);
  EXPECT_THROW(make("tq3p", d)->encode_unpacked(x.data(), 1, d, codes.data(), norms.data()), tq::Error);
}

}  // namespace
