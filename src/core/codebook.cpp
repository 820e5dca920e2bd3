// src/core/codebook.cpp — Lloyd-Max codebooks for the coordinate law of a random unit vector.
//
// Law: x = u_1 for u uniform on S^{d-1}; density f_d(x) ∝ (1 - x^2)^((d-3)/2) on [-1, 1].
// With x = sin(θ) the measure becomes ∝ cos^(d-2)(θ) dθ, which is smooth for every d >= 2 (the
// d = 2 arcsine singularity disappears). We tabulate the cumulative moments
//   C_k(θ) = ∫_{-Θ}^{θ} sin^k(t) cos^(d-2)(t) dt,  k = 0, 1, 2,
// on a uniform θ-grid (5-point Gauss-Legendre per cell) and evaluate them between grid nodes by
// cubic Hermite interpolation (the derivative is the integrand, known exactly): O(h^4) accurate.
// For large d the mass sits within a few 1/sqrt(d) of 0, so the grid spans ±15/sqrt(d-2) only.
// Lloyd iterations (centroid = conditional mean, boundary = midpoint) start from the asymptotically
// optimal companding point density ∝ f^(1/3) and run until centroids move < 1e-13 (in units of the
// coordinate's standard deviation), with symmetry enforced.
#include "turboquant/codebook.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>

#include "turboquant/error.h"

namespace tq {
namespace {

constexpr int kCells = 1 << 15;
constexpr double kPi = 3.14159265358979323846;

class MomentTable {
 public:
  explicit MomentTable(int d) : d_(d) {
    theta_max_ = d <= 3 ? kPi / 2 : std::min(kPi / 2, 15.0 / std::sqrt(double(d - 2)));
    h_ = 2 * theta_max_ / kCells;
    for (int k = 0; k < 3; ++k) {
      cum_[k].assign(kCells + 1, 0.0);
      val_[k].assign(kCells + 1, 0.0);
    }
    // 5-point Gauss-Legendre nodes/weights on [-1, 1].
    static const double gx[5] = {-0.9061798459386640, -0.5384693101056831, 0.0, 0.5384693101056831, 0.9061798459386640};
    static const double gw[5] = {0.2369268850561891, 0.4786286704993665, 0.5688888888888889, 0.4786286704993665, 0.2369268850561891};
    for (int i = 0; i <= kCells; ++i) {
      const double t = -theta_max_ + i * h_;
      for (int k = 0; k < 3; ++k) val_[k][i] = integrand(k, t);
    }
    for (int i = 0; i < kCells; ++i) {
      const double a = -theta_max_ + i * h_;
      double s[3] = {0, 0, 0};
      for (int j = 0; j < 5; ++j) {
        const double t = a + 0.5 * h_ * (gx[j] + 1);
        for (int k = 0; k < 3; ++k) s[k] += gw[j] * integrand(k, t);
      }
      for (int k = 0; k < 3; ++k) cum_[k][i + 1] = cum_[k][i] + 0.5 * h_ * s[k];
    }
    z_ = cum_[0][kCells];
  }

  // ∫ x^k f_d(x) dx over [-1, x], normalized to total mass 1.
  double cumulative(int k, double x) const {
    const double t = std::asin(std::clamp(x, -1.0, 1.0));
    if (t <= -theta_max_) return 0.0;
    if (t >= theta_max_) return cum_[k][kCells] / z_;
    const double pos = (t + theta_max_) / h_;
    const int i = std::min(kCells - 1, int(pos));
    const double u = pos - i;
    const double h00 = (1 + 2 * u) * (1 - u) * (1 - u), h10 = u * (1 - u) * (1 - u);
    const double h01 = u * u * (3 - 2 * u), h11 = u * u * (u - 1);
    const double v = h00 * cum_[k][i] + h10 * h_ * val_[k][i] + h01 * cum_[k][i + 1] + h11 * h_ * val_[k][i + 1];
    return v / z_;
  }
  double moment(int k, double a, double b) const { return cumulative(k, b) - cumulative(k, a); }
  double theta_max() const { return theta_max_; }

 private:
  double integrand(int k, double t) const {
    const double c = std::cos(t);
    if (c <= 0) return 0.0;
    const double w = d_ == 2 ? 1.0 : std::exp(double(d_ - 2) * std::log(c));
    const double s = std::sin(t);
    return k == 0 ? w : (k == 1 ? s * w : s * s * w);
  }
  int d_;
  double theta_max_ = 0, h_ = 0, z_ = 1;
  std::vector<double> cum_[3], val_[3];
};

const MomentTable& moment_table(int d) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<MomentTable>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[d];
  if (!slot) slot = std::make_unique<MomentTable>(d);
  return *slot;
}

}  // namespace

double beta_coord_moment(int d, int k, double a, double b) {
  TQ_CHECK_ARG(d >= 2, "coordinate law needs d >= 2, got {}", d);
  TQ_CHECK_ARG(k >= 0 && k <= 2, "moment order must be 0..2, got {}", k);
  return moment_table(d).moment(k, a, b);
}

Codebook::Codebook(int d, int b) : d_(d), b_(b) {
  TQ_CHECK_ARG(d >= 2, "Lloyd-Max codebook needs dimension >= 2, got {}", d);
  TQ_CHECK_ARG(b >= 0 && b <= 8, "Lloyd-Max codebook supports 0..8 bits, got {}", b);
  const MomentTable& mt = moment_table(d);
  const int L = 1 << b;
  const double sigma = 1.0 / std::sqrt(double(d));
  c_.assign(L, 0.0);
  if (L == 1) {
    mse_ = mt.moment(2, -1, 1);
  } else {
    // Init: quantiles of the companding density ∝ f^(1/3), i.e. ∝ cos^((d-3)/3 + 1)(θ) in θ.
    const int n = 1 << 14;
    const double tm = mt.theta_max() * (d > 3 ? std::sqrt(3.0) : 1.0);
    const double T = std::min(kPi / 2, tm), h = 2 * T / n;
    const double pw = (double(d) - 3) / 3 + 1;
    std::vector<double> cdf(n + 1, 0.0);
    for (int i = 0; i < n; ++i) {
      const double t0 = -T + i * h, t1 = t0 + h;
      auto g = [&](double t) { const double c = std::cos(t); return c <= 0 ? 0.0 : std::pow(c, pw); };
      cdf[i + 1] = cdf[i] + 0.5 * h * (g(t0) + g(t1));
    }
    for (int i = 0; i < L; ++i) {
      const double target = (i + 0.5) / L * cdf[n];
      const int j = int(std::lower_bound(cdf.begin(), cdf.end(), target) - cdf.begin());
      const int j0 = std::max(1, j);
      const double frac = (target - cdf[j0 - 1]) / std::max(1e-300, cdf[j0] - cdf[j0 - 1]);
      c_[i] = std::sin(-T + (j0 - 1 + frac) * h);
    }
    // Lloyd iterations.
    std::vector<double> t(L - 1), m0(L + 1), m1(L + 1);
    const int max_iter = 200000;
    int it = 0;
    for (; it < max_iter; ++it) {
      for (int i = 0; i + 1 < L; ++i) t[i] = 0.5 * (c_[i] + c_[i + 1]);
      m0[0] = 0; m1[0] = 0;
      for (int i = 0; i + 1 < L; ++i) { m0[i + 1] = mt.cumulative(0, t[i]); m1[i + 1] = mt.cumulative(1, t[i]); }
      m0[L] = mt.cumulative(0, 1.0); m1[L] = mt.cumulative(1, 1.0);
      double change = 0;
      std::vector<double> nc(L);
      for (int i = 0; i < L; ++i) {
        const double mass = m0[i + 1] - m0[i];
        nc[i] = mass > 1e-300 ? (m1[i + 1] - m1[i]) / mass : c_[i];
      }
      for (int i = 0; i < L / 2; ++i) {  // the law is symmetric: so is the optimum
        const double s = 0.5 * (nc[L - 1 - i] - nc[i]);
        nc[i] = -s;
        nc[L - 1 - i] = s;
      }
      for (int i = 0; i < L; ++i) { change = std::max(change, std::abs(nc[i] - c_[i])); c_[i] = nc[i]; }
      if (change < 1e-13 * sigma) break;
    }
    iters_ = it + 1;
    t_.resize(L - 1);
    for (int i = 0; i + 1 < L; ++i) t_[i] = 0.5 * (c_[i] + c_[i + 1]);
    // MSE per coordinate: Σ_bins ∫ (x - c_i)^2 f.
    double mse = 0;
    for (int i = 0; i < L; ++i) {
      const double a = i == 0 ? -1.0 : t_[i - 1], bb = i == L - 1 ? 1.0 : t_[i];
      const double M0 = mt.moment(0, a, bb), M1 = mt.moment(1, a, bb), M2 = mt.moment(2, a, bb);
      mse += M2 - 2 * c_[i] * M1 + c_[i] * c_[i] * M0;
    }
    mse_ = mse;
  }
  cf_.assign(c_.begin(), c_.end());
  tf_.assign(t_.begin(), t_.end());
}

const Codebook& Codebook::get(int d, int bits) {
  TQ_CHECK_ARG(d >= 2, "Lloyd-Max codebook needs dimension >= 2, got {}", d);
  TQ_CHECK_ARG(bits >= 0 && bits <= 8, "Lloyd-Max codebook supports 0..8 bits, got {}", bits);
  static std::mutex mu;
  static std::map<std::pair<int, int>, std::unique_ptr<Codebook>> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find({d, bits});
    if (it != cache.end()) return *it->second;
  }
  auto cb = std::make_unique<Codebook>(d, bits);  // computed outside the lock
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[{d, bits}];
  if (!slot) slot = std::move(cb);
  return *slot;
}

}  // namespace tq
