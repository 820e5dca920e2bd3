// Codebook properties against theory: the reference values, Lloyd-Max optimality
// conditions, the law's exact moments, the paper's bounds, convergence at large d and b.
#include <gtest/gtest.h>

#include <cmath>

#include "turboquant/codebook.h"
#include "turboquant/error.h"

namespace {

TEST(Codebook, LawMomentsAreExact) {
  // E[x^2] = 1/d for a coordinate of a uniform unit vector; mass 1; odd moment 0.
  for (int d : {2, 3, 8, 64, 128, 1536, 4096}) {
    EXPECT_NEAR(tq::beta_coord_moment(d, 0, -1, 1), 1.0, 1e-12) << d;
    EXPECT_NEAR(tq::beta_coord_moment(d, 1, -1, 1), 0.0, 1e-12) << d;
    EXPECT_NEAR(tq::beta_coord_moment(d, 2, -1, 1) * d, 1.0, 1e-9) << d;
  }
  // d = 3: the coordinate is uniform on [-1, 1] (Archimedes): P(x < 0.5) = 0.75.
  EXPECT_NEAR(tq::beta_coord_moment(3, 0, -1, 0.5), 0.75, 1e-10);
}

struct Ref { int d; double v[4]; };

TEST(Codebook, ReproducesReferenceDistortions) {
  // d x per-coordinate MSE, b = 1..4 (issue 2 / ANCHORS.md), within 1%.
  const Ref refs[] = {{128, {0.3609, 0.1160, 0.0340, 0.00931}},
                      {64, {0.3584, 0.1145, 0.0334, 0.00913}},
                      {8, {0.3224, 0.0948, 0.0261, 0.00687}}};
  for (const auto& r : refs)
    for (int b = 1; b <= 4; ++b)
      EXPECT_NEAR(tq::Codebook::get(r.d, b).distortion() / r.v[b - 1], 1.0, 0.01) << "d=" << r.d << " b=" << b;
}

TEST(Codebook, ApproachesGaussianLimit) {
  const double gauss[4] = {0.3634, 0.1175, 0.0345, 0.0095};  // Lloyd-Max for N(0,1), b = 1..4
  for (int b = 1; b <= 4; ++b) EXPECT_NEAR(tq::Codebook::get(4096, b).distortion() / gauss[b - 1], 1.0, 0.01) << b;
  // 1 bit, Gaussian: centroids ±sqrt(2/pi) sigma exactly.
  const auto& c = tq::Codebook::get(65536, 1).centroids();
  EXPECT_NEAR(c[1] * std::sqrt(65536.0), std::sqrt(2 / M_PI), 1e-4);
}

TEST(Codebook, SatisfiesLloydMaxConditions) {
  for (int d : {2, 5, 8, 100, 128, 4096})
    for (int b : {1, 2, 3, 4, 8}) {
      const auto& cb = tq::Codebook::get(d, b);
      const auto& c = cb.centroids();
      const auto& t = cb.boundaries();
      ASSERT_EQ(int(c.size()), 1 << b);
      const double sigma = 1 / std::sqrt(double(d));
      for (size_t i = 0; i + 1 < c.size(); ++i) {
        EXPECT_LT(c[i], c[i + 1]);
        EXPECT_NEAR(t[i], 0.5 * (c[i] + c[i + 1]), 1e-15);
      }
      for (size_t i = 0; i < c.size(); ++i) {  // centroid = conditional mean of its cell
        const double a = i == 0 ? -1 : t[i - 1], bb = i + 1 == c.size() ? 1 : t[i];
        const double m0 = tq::beta_coord_moment(d, 0, a, bb), m1 = tq::beta_coord_moment(d, 1, a, bb);
        if (m0 > 1e-200) EXPECT_NEAR(m1 / m0, c[i], 1e-8 * sigma) << "d=" << d << " b=" << b << " i=" << i;
        EXPECT_NEAR(c[i], -c[c.size() - 1 - i], 1e-14);  // symmetric law, symmetric optimum
      }
      EXPECT_LT(cb.final_change(), 1e-9) << "did not converge: d=" << d << " b=" << b << " iters " << cb.lloyd_iterations();
    }
}

TEST(Codebook, DistortionFallsWithBitsWithinPaperBounds) {
  for (int d : {8, 128, 1536}) {
    double prev = 1.0;
    for (int b = 1; b <= 8; ++b) {
      const double D = tq::Codebook::get(d, b).distortion();
      EXPECT_LT(D, prev) << "d=" << d << " b=" << b;
      prev = D;
      // Paper (Thm 1): D_mse <= sqrt(3) pi / 2 * 4^-b; information-theoretic lower bound 4^-b for
      // any quantizer of the sphere holds for large d (small d can beat it: a 1-D law is easier).
      EXPECT_LE(D, std::sqrt(3.0) * M_PI / 2 * std::pow(4.0, -b)) << "d=" << d << " b=" << b;
      if (d >= 128) EXPECT_GE(D, std::pow(4.0, -b)) << "d=" << d << " b=" << b;
    }
  }
}

TEST(Codebook, ConvergesForLargeDimensionAndBits) {
  const auto& cb = tq::Codebook::get(4096, 8);
  EXPECT_EQ(cb.levels(), 256);
  // High-resolution theory (Panter-Dite): D ≈ (1/12) (∫ f^(1/3))^3 4^-b; for a Gaussian coordinate
  // that is sqrt(3) pi / 2 * 4^-b. At 8 bits the optimum sits within a few % below it.
  const double pd = std::sqrt(3.0) * M_PI / 2 * std::pow(4.0, -8);
  EXPECT_GT(cb.distortion(), 0.9 * pd);
  EXPECT_LT(cb.distortion(), pd);
}

TEST(Codebook, QuantizeIsNearestCentroid) {
  const auto& cb = tq::Codebook::get(128, 3);
  const auto& c = cb.centroids_f32();
  for (float x = -0.5f; x <= 0.5f; x += 0.0007f) {
    const uint32_t q = cb.quantize(x);
    for (size_t i = 0; i < c.size(); ++i) EXPECT_LE(std::abs(x - c[q]), std::abs(x - c[i]) + 1e-7f);
  }
}

TEST(Codebook, RejectsBadArguments) {
  EXPECT_THROW(tq::Codebook::get(1, 3), tq::Error);
  EXPECT_THROW(tq::Codebook::get(128, 9), tq::Error);
  EXPECT_THROW(tq::Codebook::get(128, -1), tq::Error);
}

}  // namespace
