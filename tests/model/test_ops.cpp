// Forward-pass ops: the fast matmul against the double reference on odd shapes; RMSNorm, RoPE,
// attention, softmax/KL and sampling against properties that follow from their definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "turboquant/error.h"
#include "turboquant/model/ops.h"

namespace {

using namespace tq::model;

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> g(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

TEST(Ops, MatmulMatchesReferenceOnOddShapes) {
  std::mt19937 rng(1);
  for (int T : {1, 3, 17})
    for (int in : {1, 7, 33, 130})
      for (int out : {1, 2, 5, 67, 300}) {
        const auto x = randn(size_t(T) * in, rng), W = randn(size_t(out) * in, rng);
        std::vector<float> y(size_t(T) * out), yr(y.size());
        matmul(x.data(), W.data(), y.data(), T, in, out);
        matmul_ref(x.data(), W.data(), yr.data(), T, in, out);
        for (int t = 0; t < T; ++t)
          for (int o = 0; o < out; ++o) {
            double bound = 0;  // float rounding bound: ~in ulps of sum |x||w|
            for (int i = 0; i < in; ++i) bound += std::fabs(x[size_t(t) * in + i] * W[size_t(o) * in + i]);
            ASSERT_NEAR(y[size_t(t) * out + o], yr[size_t(t) * out + o], 1e-6 * in * bound + 1e-30)
                << T << "x" << in << "x" << out;
          }
      }
}

TEST(Ops, MatmulIsThreadCountInvariant) {
  std::mt19937 rng(2);
  const int T = 9, in = 257, out = 513;
  const auto x = randn(size_t(T) * in, rng), W = randn(size_t(out) * in, rng);
  std::vector<float> y1(size_t(T) * out), y2(y1.size());
  const int saved = max_threads();
  set_threads(1);
  matmul(x.data(), W.data(), y1.data(), T, in, out);
  set_threads(2);
  matmul(x.data(), W.data(), y2.data(), T, in, out);
  set_threads(saved);
  EXPECT_EQ(y1, y2);  // rows are split between threads, never a row's sum
}

TEST(Ops, RmsNormGivesUnitRms) {
  std::mt19937 rng(3);
  const int T = 4, dim = 37;
  auto x = randn(size_t(T) * dim, rng, 5.0f);
  std::vector<float> g(size_t(dim), 1.0f), y(x.size());
  rmsnorm(x.data(), g.data(), 0.0f, y.data(), T, dim);
  for (int t = 0; t < T; ++t) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += double(y[size_t(t) * dim + i]) * y[size_t(t) * dim + i];
    EXPECT_NEAR(ss / dim, 1.0, 1e-5);
  }
  // scale invariance, the gain multiplies, eps keeps a zero row finite
  std::vector<float> x3(x.size()), y3(x.size());
  for (size_t i = 0; i < x.size(); ++i) x3[i] = 3 * x[i];
  for (int i = 0; i < dim; ++i) g[size_t(i)] = float(i);
  rmsnorm(x.data(), g.data(), 0.0f, y.data(), T, dim);
  rmsnorm(x3.data(), g.data(), 0.0f, y3.data(), T, dim);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], y3[i], 1e-5 * (1 + std::fabs(y[i])));
  std::vector<float> z(size_t(dim), 0.0f), zy(static_cast<size_t>(dim));
  rmsnorm(z.data(), g.data(), 1e-5f, zy.data(), 1, dim);
  for (float v : zy) EXPECT_EQ(v, 0.0f);
}

TEST(Ops, RopeRotatesConsecutivePairs) {
  // Pair i of a head at position p turns by p * theta^(-2i/n_rot): pair 0 by exactly p radians.
  const int hd = 8;
  RopeParams p{8, 10000.0};
  for (int pos : {0, 1, 5, 1000}) {
    std::vector<float> x(size_t(hd), 0.0f);
    for (int i = 0; i < hd; i += 2) x[size_t(i)] = 1.0f;  // every pair starts at (1, 0)
    rope(x.data(), 1, 1, hd, pos, p);
    for (int i = 0; i < hd / 2; ++i) {
      const double a = pos * std::pow(10000.0, -2.0 * i / hd);
      EXPECT_NEAR(x[size_t(2 * i)], std::cos(a), 1e-6) << pos << " " << i;
      EXPECT_NEAR(x[size_t(2 * i + 1)], std::sin(a), 1e-6) << pos << " " << i;
    }
  }
}

TEST(Ops, RopeScoresDependOnlyOnRelativePosition) {
  std::mt19937 rng(4);
  const int H = 3, hd = 12;
  RopeParams p{8, 500.0};  // dims 8..11 are not rotated
  const auto q0 = randn(size_t(H) * hd, rng), k0 = randn(size_t(H) * hd, rng);
  auto dot_at = [&](int pq, int pk, int h) {
    auto q = q0, k = k0;
    rope(q.data(), 1, H, hd, pq, p);
    rope(k.data(), 1, H, hd, pk, p);
    double s = 0;
    for (int d = 0; d < hd; ++d) s += double(q[size_t(h * hd + d)]) * k[size_t(h * hd + d)];
    return s;
  };
  for (int h = 0; h < H; ++h) {
    EXPECT_NEAR(dot_at(7, 3, h), dot_at(104, 100, h), 1e-4);
    EXPECT_NEAR(dot_at(3, 3, h), dot_at(0, 0, h), 1e-4);
  }
  auto x = q0;
  rope(x.data(), 1, H, hd, 17, p);
  for (int h = 0; h < H; ++h)
    for (int d = 8; d < hd; ++d) EXPECT_EQ(x[size_t(h * hd + d)], q0[size_t(h * hd + d)]);
  // batched positions pos0 + t equal one-at-a-time
  auto b = q0;
  b.insert(b.end(), q0.begin(), q0.end());
  rope(b.data(), 2, H, hd, 5, p);
  auto one = q0;
  rope(one.data(), 1, H, hd, 6, p);
  for (int i = 0; i < H * hd; ++i) EXPECT_EQ(b[size_t(H * hd + i)], one[size_t(i)]);
  // linear scaling: position p at freq_scale 1/4 is position p/4
  RopeParams lin = p;
  lin.freq_scale = 0.25;
  auto s1 = q0, s2 = q0;
  rope(s1.data(), 1, H, hd, 40, lin);
  rope(s2.data(), 1, H, hd, 10, p);
  for (size_t i = 0; i < s1.size(); ++i) EXPECT_NEAR(s1[i], s2[i], 1e-5);
  EXPECT_THROW(rope(x.data(), 1, H, hd, 0, RopeParams{3}), tq::Error);
}

TEST(Ops, AttentionFollowsItsDefinition) {
  std::mt19937 rng(5);
  const int Hq = 4, Hkv = 2, hd = 5, len = 6;
  const auto k = randn(size_t(len) * Hkv * hd, rng), v = randn(size_t(len) * Hkv * hd, rng);
  const auto q = randn(size_t(len) * Hq * hd, rng);
  std::vector<float> out(q.size());
  attention_ref(q.data(), k.data(), v.data(), out.data(), len, len, Hq, Hkv, hd, 0.7f);
  // Query 0 sees only position 0: its output is v[0] of its KV head (h / 2).
  for (int h = 0; h < Hq; ++h)
    for (int d = 0; d < hd; ++d) EXPECT_NEAR(out[size_t(h * hd + d)], v[size_t((h / 2) * hd + d)], 1e-6);
  // Query 3, head 1 (KV head 0), by hand: softmax over positions 0..3.
  {
    const int i = 3, h = 1;
    double s[4], m = -1e300, z = 0;
    for (int j = 0; j <= i; ++j) {
      s[j] = 0;
      for (int d = 0; d < hd; ++d) s[j] += 0.7 * q[size_t((i * Hq + h) * hd + d)] * k[size_t((j * Hkv + 0) * hd + d)];
      m = std::max(m, s[j]);
    }
    for (int j = 0; j <= i; ++j) z += std::exp(s[j] - m);
    for (int d = 0; d < hd; ++d) {
      double o = 0;
      for (int j = 0; j <= i; ++j) o += std::exp(s[j] - m) / z * v[size_t((j * Hkv + 0) * hd + d)];
      EXPECT_NEAR(out[size_t((i * Hq + h) * hd + d)], o, 1e-6);
    }
  }
  // The last 2 queries alone (n = 2) give the same rows as in the full causal batch.
  std::vector<float> tail(size_t(2) * Hq * hd);
  attention_ref(q.data() + size_t(4) * Hq * hd, k.data(), v.data(), tail.data(), 2, len, Hq, Hkv, hd, 0.7f);
  for (size_t i = 0; i < tail.size(); ++i) EXPECT_EQ(tail[i], out[size_t(4) * Hq * hd + i]);
  // Equal keys: the output is the mean of the visible values.
  std::vector<float> kk(k.size(), 0.5f), o2(hd * Hq);
  attention_ref(q.data(), kk.data(), v.data(), o2.data(), 1, len, Hq, Hkv, hd, 1.0f);
  for (int d = 0; d < hd; ++d) {
    double mean = 0;
    for (int j = 0; j < len; ++j) mean += v[size_t(j * Hkv * hd + d)] / len;
    EXPECT_NEAR(o2[size_t(d)], mean, 1e-6);
  }
  EXPECT_THROW(attention_ref(q.data(), k.data(), v.data(), out.data(), 7, len, Hq, Hkv, hd, 1.0f), tq::Error);
  EXPECT_THROW(attention_ref(q.data(), k.data(), v.data(), out.data(), 1, len, 3, 2, hd, 1.0f), tq::Error);
}

TEST(Ops, SoftmaxAndKl) {
  const std::vector<float> a = {1.0f, 2.0f, 3.0f, -50.0f}, b = {0.0f, 0.0f, 0.0f, 0.0f};
  std::vector<double> la(4), lb(4);
  log_softmax(a.data(), la.data(), 4);
  log_softmax(b.data(), lb.data(), 4);
  double s = 0;
  for (double x : la) s += std::exp(x);
  EXPECT_NEAR(s, 1.0, 1e-12);
  EXPECT_NEAR(lb[0], -std::log(4.0), 1e-12);
  EXPECT_EQ(kl_divergence(la.data(), la.data(), 4), 0.0);
  // KL(p || uniform) = log n - H(p)
  double H = 0;
  for (double x : la) H -= std::exp(x) * x;
  EXPECT_NEAR(kl_divergence(la.data(), lb.data(), 4), std::log(4.0) - H, 1e-12);
  EXPECT_GT(kl_divergence(lb.data(), la.data(), 4), 0.0);
  EXPECT_EQ(argmax(a.data(), 4), 2);
  const std::vector<float> tie = {1, 3, 3};
  EXPECT_EQ(argmax(tie.data(), 3), 1);
}

TEST(Ops, SamplingFollowsTheSoftmax) {
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(7.0f), -1e9f};  // p = 0.1, 0.2, 0.7, 0
  std::mt19937_64 rng(6);
  EXPECT_EQ(sample_token(logits.data(), 4, 0.0f, rng), 2);
  std::vector<int> count(4);
  const int N = 100000;
  for (int i = 0; i < N; ++i) ++count[size_t(sample_token(logits.data(), 4, 1.0f, rng))];
  const double p[4] = {0.1, 0.2, 0.7, 0.0};
  for (int i = 0; i < 4; ++i)  // 5 standard deviations
    EXPECT_NEAR(count[size_t(i)] / double(N), p[i], 5 * std::sqrt(p[i] * (1 - p[i]) / N) + 1e-12) << i;
  // temp 2 flattens: p ∝ sqrt(1, 2, 7)
  std::fill(count.begin(), count.end(), 0);
  for (int i = 0; i < N; ++i) ++count[size_t(sample_token(logits.data(), 4, 2.0f, rng))];
  const double z = 1 + std::sqrt(2.0) + std::sqrt(7.0);
  EXPECT_NEAR(count[2] / double(N), std::sqrt(7.0) / z, 0.01);
}

}  // namespace
