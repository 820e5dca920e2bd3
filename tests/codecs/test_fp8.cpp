// fp8 (E4M3FN, per-vector fp32 scale): the format against its definition, rounding to nearest
// even, the 2^-4 relative-error bound of a 3-bit mantissa, the local uniform-quantizer law
// (error variance = ulp^2/12), the documented byte layout, zero vectors and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "turboquant/baseline_codecs.h"
#include "turboquant/codec.h"
#include "turboquant/error.h"
#include "turboquant/rotation.h"

namespace {

uint64_t fresh_seed() {
  static const uint64_t s = std::random_device{}();
  return s;
}

TEST(E4m3, TableMatchesDefinition) {
  // Independent spot values of the OCP E4M3FN format.
  EXPECT_EQ(tq::e4m3_to_float_ref(0x00), 0.0f);
  EXPECT_EQ(tq::e4m3_to_float_ref(0x01), std::ldexp(1.0f, -9));   // smallest subnormal
  EXPECT_EQ(tq::e4m3_to_float_ref(0x08), std::ldexp(1.0f, -6));   // smallest normal
  EXPECT_EQ(tq::e4m3_to_float_ref(0x38), 1.0f);                   // exponent 7 = bias
  EXPECT_EQ(tq::e4m3_to_float_ref(0x7e), 448.0f);                 // largest finite
  EXPECT_EQ(tq::e4m3_to_float_ref(0xfe), -448.0f);
  EXPECT_TRUE(std::isnan(tq::e4m3_to_float_ref(0x7f)));
  EXPECT_TRUE(std::isnan(tq::e4m3_to_float_ref(0xff)));
  for (int c = 0; c < 256; ++c) {
    const float r = tq::e4m3_to_float_ref(uint8_t(c)), t = tq::e4m3_to_float(uint8_t(c));
    if (std::isnan(r)) EXPECT_TRUE(std::isnan(t)) << c;
    else EXPECT_EQ(r, t) << c;
  }
}

TEST(E4m3, EveryFiniteCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    EXPECT_EQ(tq::float_to_e4m3(tq::e4m3_to_float(uint8_t(c))), c) << c;
  }
}

TEST(E4m3, RoundsToNearestTiesToEven) {
  // Brute force: the nearest code among all 254 finite values; ties must pick an even mantissa.
  std::mt19937_64 g(fresh_seed());
  std::uniform_real_distribution<double> logu(-12, std::log2(448.0));
  for (int it = 0; it < 20000; ++it) {
    const float x = float((g() & 1 ? -1 : 1) * std::exp2(logu(g)));
    const uint8_t c = tq::float_to_e4m3(x);
    const double err = std::fabs(double(tq::e4m3_to_float(c)) - x);
    for (int k = 0; k < 256; ++k) {
      if ((k & 0x7f) == 0x7f) continue;
      ASSERT_LE(err, std::fabs(double(tq::e4m3_to_float(uint8_t(k))) - x)) << "x=" << x;
    }
  }
  // Midpoints between consecutive positive codes go to the even one (mantissa LSB 0).
  for (int c = 0; c < 0x7e; ++c) {
    const double mid = 0.5 * (double(tq::e4m3_to_float(uint8_t(c))) + tq::e4m3_to_float(uint8_t(c + 1)));
    const uint8_t r = tq::float_to_e4m3(float(mid));
    EXPECT_EQ(r, (c & 1) ? c + 1 : c) << "midpoint after code " << c;
  }
  EXPECT_EQ(tq::float_to_e4m3(1000.f), 0x7e);  // saturates, no infinity in the fn format
  EXPECT_EQ(tq::float_to_e4m3(-1000.f), 0xfe);
}

std::vector<float> gaussian(size_t n, uint64_t seed, double scale = 1.0) {
  tq::Rng r(seed);
  std::vector<float> x(n);
  for (auto& v : x) v = float(scale * r.normal());
  return x;
}

TEST(Fp8Codec, BitsPerValueExact) {
  for (int d : {1, 8, 100, 128, 1536}) {
    auto c = tq::Codec::create(tq::parse_codec("fp8"), d);
    EXPECT_EQ(c->code_size(), size_t(d) + 4);
    EXPECT_DOUBLE_EQ(c->bits_per_value(), 8.0 + 32.0 / d);
  }
}

TEST(Fp8Codec, RelativeErrorBoundedByHalfUlp) {
  // A 3-bit mantissa rounds to within 2^-4 of the value (half an ulp of 2^-3) above the smallest
  // normal; below it (|x|/s < 2^-6) the absolute error is at most half the subnormal step 2^-9.
  for (double scale : {1e-20, 1e-3, 1.0, 7.5e4, 1e25}) {
    const int d = 100, n = 500;
    auto c = tq::Codec::create(tq::parse_codec("fp8"), d);
    const auto x = gaussian(size_t(n) * d, fresh_seed() + uint64_t(std::log10(scale) + 40), scale);
    std::vector<uint8_t> codes(c->code_size() * n);
    std::vector<float> y(x.size());
    c->encode(x.data(), n, d, codes.data());
    c->decode(codes.data(), n, y.data(), d);
    for (int i = 0; i < n; ++i) {
      float s;
      std::memcpy(&s, codes.data() + i * c->code_size() + d, 4);
      double e2 = 0, x2 = 0;
      for (int j = 0; j < d; ++j) {
        const double xv = x[size_t(i) * d + j], err = std::fabs(y[size_t(i) * d + j] - xv);
        if (std::fabs(xv) / s >= std::ldexp(1.0, -6)) ASSERT_LE(err, std::ldexp(std::fabs(xv), -4) * (1 + 1e-6));
        else ASSERT_LE(err, std::ldexp(double(s), -10) * (1 + 1e-6));
        e2 += err * err;
        x2 += xv * xv;
      }
      ASSERT_LE(std::sqrt(e2 / x2), std::ldexp(1.0, -4)) << "vector " << i << " scale " << scale;
    }
  }
}

TEST(Fp8Codec, ErrorVarianceIsUlpSquaredOverTwelve) {
  // Locally a float format is a uniform quantizer: the rounding error of a value in a binade with
  // code spacing u is ~ uniform on [-u/2, u/2], variance u^2/12. The prediction uses only the
  // format (spacing at each value), the measurement the codec.
  const int d = 128, n = 4000;
  auto c = tq::Codec::create(tq::parse_codec("fp8"), d);
  const auto x = gaussian(size_t(n) * d, fresh_seed());
  std::vector<uint8_t> codes(c->code_size() * n);
  std::vector<float> y(x.size());
  c->encode(x.data(), n, d, codes.data());
  c->decode(codes.data(), n, y.data(), d);
  double measured = 0, predicted = 0;
  for (int i = 0; i < n; ++i) {
    float s;
    std::memcpy(&s, codes.data() + i * c->code_size() + d, 4);
    for (int j = 0; j < d; ++j) {
      const double v = std::fabs(x[size_t(i) * d + j]) / s;
      if (v >= 448.0 - 16.0) continue;  // the top of the range holds the max itself (exact), skip
      const double u = v < std::ldexp(1.0, -6) ? std::ldexp(1.0, -9) : std::ldexp(1.0, std::ilogb(v) - 3);
      predicted += u * u / 12.0 * double(s) * s;
      const double e = double(y[size_t(i) * d + j]) - x[size_t(i) * d + j];
      measured += e * e;
    }
  }
  EXPECT_NEAR(measured / predicted, 1.0, 0.03);
}

TEST(Fp8Codec, DocumentedLayoutDecodes) {
  // Hand-built bytes: codes 0x38 (1.0), 0xc0 (-2.0), 0x7e (448), 0x01 (2^-9); scale 0.5 as fp32.
  auto c = tq::Codec::create(tq::parse_codec("fp8"), 4);
  uint8_t bytes[8] = {0x38, 0xc0, 0x7e, 0x01};
  const float s = 0.5f;
  std::memcpy(bytes + 4, &s, 4);
  float y[4];
  c->decode(bytes, 1, y, 4);
  EXPECT_EQ(y[0], 0.5f);
  EXPECT_EQ(y[1], -1.0f);
  EXPECT_EQ(y[2], 224.0f);
  EXPECT_EQ(y[3], std::ldexp(0.5f, -9));
  // And encode puts the max at 448 with s = max/448.
  const float x[4] = {3.0f, -7.0f, 0.25f, 1.0f};
  uint8_t out[8];
  c->encode(x, 1, 4, out);
  EXPECT_EQ(out[1], 0xfe);
  float so;
  std::memcpy(&so, out + 4, 4);
  EXPECT_FLOAT_EQ(so, 7.0f / 448.0f);
}

TEST(Fp8Codec, ZeroVectorAndBadInput) {
  const int d = 33;
  auto c = tq::Codec::create(tq::parse_codec("fp8"), d);
  std::vector<float> z(d, 0.f), y(d, 1.f);
  std::vector<uint8_t> codes(c->code_size(), 0xAB);
  c->encode(z.data(), 1, d, codes.data());
  c->decode(codes.data(), 1, y.data(), d);
  for (float v : y) EXPECT_EQ(v, 0.f);
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<float> x(2 * d, 1.f);
    x[d + 5] = bad;
    std::vector<uint8_t> out(2 * c->code_size(), 0xAB);
    EXPECT_THROW(c->encode(x.data(), 2, d, out.data()), tq::Error);
    for (uint8_t b : out) ASSERT_EQ(b, 0xAB) << "a failed encode wrote output";
  }
  EXPECT_THROW(c->encode(z.data(), 1, d - 1, codes.data()), tq::Error);
  EXPECT_THROW(tq::Codec::create(tq::parse_codec("fp8"), 0), tq::Error);
}

}  // namespace
