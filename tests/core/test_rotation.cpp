// Rotations: orthogonality, exact inverse, determinism, Hadamard = explicit matrix product.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "turboquant/error.h"
#include "turboquant/rotation.h"

namespace {

std::vector<double> randn(int d, uint64_t seed) {
  tq::Rng r(seed);
  std::vector<double> x(d);
  for (auto& v : x) v = r.normal();
  return x;
}

TEST(Rotation, FwhtMatchesSylvesterMatrix) {
  for (int n : {1, 2, 8, 64}) {
    auto x = randn(n, 3);
    auto y = x;
    tq::fwht(y.data(), n);
    for (int i = 0; i < n; ++i) {
      double acc = 0;
      for (int j = 0; j < n; ++j) acc += (__builtin_popcount(i & j) & 1 ? -1.0 : 1.0) * x[j];
      EXPECT_NEAR(y[i], acc / std::sqrt(double(n)), 1e-12);
    }
  }
}

TEST(Rotation, OrthogonalAndInvertible) {
  const uint64_t seed = std::random_device{}();
  for (auto kind : {tq::RotationKind::kHadamard, tq::RotationKind::kDense})
    for (int d : {2, 8, 64, 128, 100, 300}) {
      if (kind == tq::RotationKind::kHadamard && (d & (d - 1))) continue;
      auto R = tq::Rotation::create(kind, d, seed);
      auto x = randn(d, seed + 1), y = x, z = x;
      R->forward(x.data(), y.data());
      R->inverse(y.data(), z.data());
      double nx = 0, ny = 0, err = 0;
      for (int i = 0; i < d; ++i) { nx += x[i] * x[i]; ny += y[i] * y[i]; err += (z[i] - x[i]) * (z[i] - x[i]); }
      EXPECT_NEAR(ny / nx, 1.0, 1e-12) << d;
      EXPECT_LT(err / nx, 1e-24) << d;
      // fp32 path agrees with the double reference to fp32 precision.
      std::vector<float> xf(x.begin(), x.end()), yf(d);
      R->forward(xf.data(), yf.data());
      double e32 = 0;
      for (int i = 0; i < d; ++i) e32 += (yf[i] - y[i]) * (yf[i] - y[i]);
      EXPECT_LT(std::sqrt(e32 / nx), 1e-6) << d;
    }
}

TEST(Rotation, DenseIsOrthonormalMatrixWithHaarMoments) {
  // Q^T Q = I; and over seeds, E[Q_00^2] = 1/d (first moment of the Haar law).
  const int d = 24;
  double m2 = 0;
  const int seeds = 400;
  for (int s = 0; s < seeds; ++s) {
    auto R = tq::Rotation::create(tq::RotationKind::kDense, d, 1000 + s);
    const auto& M = R->matrix();
    if (s == 0)
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) {
          double acc = 0;
          for (int k = 0; k < d; ++k) acc += double(M[k * d + i]) * M[k * d + j];
          EXPECT_NEAR(acc, i == j ? 1.0 : 0.0, 1e-6);
        }
    m2 += double(M[0]) * M[0];
  }
  // Var(Q_00^2) = 2(d-1)/(d^2 (d+2)) ~ 3e-3; the mean over 400 seeds has sd ~ 2.8e-3/20.
  EXPECT_NEAR(m2 / seeds, 1.0 / d, 4 * std::sqrt(2.0 * (d - 1) / (double(d) * d * (d + 2)) / seeds));
}

TEST(Rotation, DeterministicPerSeed) {
  auto a = tq::Rotation::create(tq::RotationKind::kAuto, 100, 42);
  auto b = tq::Rotation::create(tq::RotationKind::kDense, 100, 42);
  EXPECT_EQ(a->matrix(), b->matrix());
  tq::Rng r1(5), r2(5);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(r1.normal(), r2.normal());
  auto c = tq::Rotation::create(tq::RotationKind::kHadamard, 64, 1), e = tq::Rotation::create(tq::RotationKind::kHadamard, 64, 2);
  EXPECT_NE(c->signs(0), e->signs(0));
}

// The cache shares a rotation while it is held, keeps recently used ones up to its budget, and
// does not keep every dense matrix ever built (a long-lived process would grow without bound).
TEST(Rotation, CacheSharesAndStaysBounded) {
  tq::Rotation::set_cache_budget(size_t(8) << 20);  // 8 MB: a few dense matrices of 400 (1.9 MB)
  auto a = tq::Rotation::create(tq::RotationKind::kDense, 300, 7);
  EXPECT_EQ(a.get(), tq::Rotation::create(tq::RotationKind::kDense, 300, 7).get());  // shared
  EXPECT_EQ(a->bytes(), size_t(300) * 300 * 12);
  const auto* raw = a.get();
  const std::vector<float> m5000 = tq::Rotation::create(tq::RotationKind::kDense, 400, 5000)->matrix();
  for (uint64_t s = 0; s < 12; ++s) {  // 23 MB built and dropped one by one
    auto r = tq::Rotation::create(tq::RotationKind::kDense, 400, 5000 + s);
    EXPECT_EQ(r->dim(), 400);
  }
  EXPECT_LE(tq::Rotation::cache_retained_bytes(), size_t(8) << 20);
  EXPECT_GE(tq::Rotation::cache_retained_bytes(), size_t(400) * 400 * 12 * 3);  // recent ones kept
  // Still held by `a`: the same object, whatever the cache dropped meanwhile.
  EXPECT_EQ(raw, tq::Rotation::create(tq::RotationKind::kDense, 300, 7).get());
  // A recent one is retained without a holder: the same object again.
  const auto* recent = tq::Rotation::create(tq::RotationKind::kDense, 400, 5011).get();
  EXPECT_EQ(recent, tq::Rotation::create(tq::RotationKind::kDense, 400, 5011).get());
  // An old one was dropped and is rebuilt: the same matrix (deterministic per seed).
  EXPECT_EQ(tq::Rotation::create(tq::RotationKind::kDense, 400, 5000)->matrix(), m5000);
  tq::Rotation::set_cache_budget(tq::Rotation::kCacheBudget);
}

TEST(Rotation, RejectsBadArguments) {
  EXPECT_THROW(tq::Rotation::create(tq::RotationKind::kHadamard, 100, 1), tq::Error);
  EXPECT_THROW(tq::Rotation::create(tq::RotationKind::kDense, 0, 1), tq::Error);
}

}  // namespace
