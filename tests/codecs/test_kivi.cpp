// kivi2 (per token) and KIVI's per-channel key quantizer: exact bits, the 4-level uniform law
// (step = range/3, error^2 = step^2/12), the block's range kept (min and max within half a step),
// per-channel beating per-token on channel-outlier keys (KIVI's premise), bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "turboquant/baseline_codecs.h"
#include "turboquant/codec.h"
#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/rotation.h"

namespace {

uint64_t fresh_seed() {
  static const uint64_t s = std::random_device{}();
  return s;
}

std::vector<float> gaussian(size_t n, uint64_t seed, double scale = 1.0) {
  tq::Rng r(seed);
  std::vector<float> x(n);
  for (auto& v : x) v = float(scale * r.normal());
  return x;
}

TEST(Kivi2, BitsPerValueExact) {
  // 2 bits per value + fp16 scale and fp16 zero point per block of 32.
  EXPECT_DOUBLE_EQ(tq::Codec::create(tq::parse_codec("kivi2"), 128)->bits_per_value(), 3.0);
  EXPECT_EQ(tq::Codec::create(tq::parse_codec("kivi2"), 100)->code_size(), size_t(25 + 16));
  EXPECT_EQ(tq::Codec::create(tq::parse_codec("kivi2"), 8)->code_size(), size_t(2 + 4));
  EXPECT_EQ(tq::Codec::create(tq::parse_codec("kivi2"), 33)->code_size(), size_t(9 + 8));
}

TEST(Kivi2, UniformLawAndRange) {
  const int d = 96, n = 4000;
  auto c = tq::Codec::create(tq::parse_codec("kivi2"), d);
  std::mt19937_64 g(fresh_seed());
  std::uniform_real_distribution<float> u(-1.f, 3.f);
  std::vector<float> x(size_t(n) * d);
  for (auto& v : x) v = u(g);
  std::vector<uint8_t> codes(c->code_size() * n);
  std::vector<float> y(x.size());
  c->encode(x.data(), n, d, codes.data());
  c->decode(codes.data(), n, y.data(), d);
  double measured = 0, predicted = 0;
  for (int i = 0; i < n; ++i) {
    const uint8_t* scal = codes.data() + i * c->code_size() + c->codes_bytes();
    for (int b = 0; b < d / 32; ++b) {
      uint16_t hs, hz;
      std::memcpy(&hs, scal + 4 * b, 2);
      std::memcpy(&hz, scal + 4 * b + 2, 2);
      const double s = tq::half_to_float(hs), z = tq::half_to_float(hz);
      double lo = 1e9, hi = -1e9;
      for (int j = 32 * b; j < 32 * b + 32; ++j) { lo = std::fmin(lo, x[size_t(i) * d + j]); hi = std::fmax(hi, x[size_t(i) * d + j]); }
      EXPECT_LE(z, lo);                                  // zero point at or below the block minimum
      EXPECT_LE(hi - (z + 3 * s), 0.5 * s * (1 + 1e-6));  // the top level reaches the maximum
      for (int j = 32 * b; j < 32 * b + 32; ++j) {
        const double v = x[size_t(i) * d + j], e = double(y[size_t(i) * d + j]) - v;
        ASSERT_LE(std::fabs(e), 0.5 * s * (1 + 1e-6));
        if (v == lo || v == hi) continue;  // the extremes sit on the end levels
        predicted += s * s / 12.0;
        measured += e * e;
      }
    }
  }
  // Levels z, z+s, z+2s, z+3s span [min, max]: the inner cells are full, the end levels cover half
  // cells whose error is uniform on [0, s/2] — variance s^2/12 as well, so the law is exact for
  // uniform data; 2% covers sampling (12000 blocks x 30 values).
  EXPECT_NEAR(measured / predicted, 1.0, 0.02);
}

TEST(Kivi2, ConstantAndZeroBlocks) {
  const int d = 40;
  auto c = tq::Codec::create(tq::parse_codec("kivi2"), d);
  std::vector<float> x(d, 0.f), y(d, 1.f);
  std::vector<uint8_t> codes(c->code_size());
  c->encode(x.data(), 1, d, codes.data());
  c->decode(codes.data(), 1, y.data(), d);
  for (float v : y) EXPECT_EQ(v, 0.f);
  std::fill(x.begin(), x.end(), 0.3f);  // not an fp16 value: zero point rounds down, step covers it
  c->encode(x.data(), 1, d, codes.data());
  c->decode(codes.data(), 1, y.data(), d);
  for (float v : y) EXPECT_NEAR(v, 0.3f, 0.3f * std::ldexp(1.0f, -11));
}

TEST(Kivi2, PerChannelBeatsPerTokenOnChannelOutliers) {
  // Keys with fixed outlier channels (20x): per token, the outlier sets each block's range and
  // the other 31 channels of its block share 4 levels over a 20x wider range; per channel, every
  // channel gets its own range over the group of tokens.
  const int d = 64, n = 512, G = 32;
  auto x = gaussian(size_t(n) * d, fresh_seed());
  for (int t = 0; t < n; ++t) { x[size_t(t) * d + 5] = 20.f + x[size_t(t) * d + 5]; x[size_t(t) * d + 40] *= 20.f; }
  auto c = tq::Codec::create(tq::parse_codec("kivi2"), d);
  std::vector<uint8_t> codes(c->code_size() * n);
  std::vector<float> yt(x.size()), yc(x.size());
  c->encode(x.data(), n, d, codes.data());
  c->decode(codes.data(), n, yt.data(), d);
  const double bits = tq::kivi_quantize_per_channel(x.data(), n, d, d, G, 2, yc.data());
  EXPECT_DOUBLE_EQ(bits, double(n) * d * 2 + double(n / G) * d * 32);  // = 3 bits per value at G = 32
  double et = 0, ec = 0;
  for (size_t k = 0; k < x.size(); ++k) {
    et += std::pow(double(x[k]) - yt[k], 2);
    ec += std::pow(double(x[k]) - yc[k], 2);
  }
  EXPECT_LT(ec, 0.5 * et) << "per-channel " << ec << " per-token " << et;
  // In place (y aliases x) gives the same result.
  auto x2 = x;
  tq::kivi_quantize_per_channel(x2.data(), n, d, d, G, 2, x2.data());
  EXPECT_EQ(x2, yc);
  // A partial last group is quantized over its own tokens: error still within half its step.
  std::vector<float> y3(size_t(40) * d);
  tq::kivi_quantize_per_channel(x.data(), 40, d, d, G, 2, y3.data());
  for (size_t k = 0; k < y3.size(); ++k) ASSERT_TRUE(std::isfinite(y3[k]));
}

TEST(Kivi2, BadInput) {
  const int d = 32;
  auto c = tq::Codec::create(tq::parse_codec("kivi2"), d);
  for (float bad : {NAN, -INFINITY, 1e6f}) {
    std::vector<float> x(2 * d, 1.f);
    x[d + 9] = bad;
    if (bad == 1e6f) x[d + 10] = -1e6f;  // range 2e6: the step (range/3) is beyond fp16
    std::vector<uint8_t> out(2 * c->code_size(), 0xEE);
    EXPECT_THROW(c->encode(x.data(), 2, d, out.data()), tq::Error) << bad;
    for (uint8_t v : out) ASSERT_EQ(v, 0xEE);
    std::vector<float> y(x.size());
    EXPECT_THROW(tq::kivi_quantize_per_channel(x.data(), 2, d, d, 32, 2, y.data()), tq::Error);
  }
  std::vector<float> x(d), y(d);
  EXPECT_THROW(tq::kivi_quantize_per_channel(x.data(), 1, d, d, 0, 2, y.data()), tq::Error);
  EXPECT_THROW(tq::kivi_quantize_per_channel(x.data(), 1, d, d, 32, 9, y.data()), tq::Error);
}

}  // namespace
