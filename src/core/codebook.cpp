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
    // Lloyd iterations (robust, linear convergence), then Newton on the fixed-point equations
    // c = T(c) (T_i = conditional mean of cell i; the Jacobian is tridiagonal), which converges
    // quadratically where plain Lloyd needs >1e5 iterations at 256 levels.
    std::vector<double> t(L - 1), m0(L + 1), m1(L + 1), nc(L);
    auto symmetrize = [&](std::vector<double>& v) {  // the law is symmetric: so is the optimum
      for (int i = 0; i < L / 2; ++i) {
        const double s = 0.5 * (v[L - 1 - i] - v[i]);
        v[i] = -s;
        v[L - 1 - i] = s;
      }
    };
    auto lloyd_map = [&](const std::vector<double>& c, std::vector<double>& out) {
      for (int i = 0; i + 1 < L; ++i) t[i] = 0.5 * (c[i] + c[i + 1]);
      m0[0] = 0; m1[0] = 0;
      for (int i = 0; i + 1 < L; ++i) { m0[i + 1] = mt.cumulative(0, t[i]); m1[i + 1] = mt.cumulative(1, t[i]); }
      m0[L] = mt.cumulative(0, 1.0); m1[L] = mt.cumulative(1, 1.0);
      for (int i = 0; i < L; ++i) {
        const double mass = m0[i + 1] - m0[i];
        out[i] = mass > 1e-300 ? (m1[i + 1] - m1[i]) / mass : c[i];
      }
      symmetrize(out);
    };
    // Normalized density f_d(x) = (1-x^2)^((d-3)/2) / B(1/2, (d-1)/2).
    const double log_z = std::lgamma(0.5) + std::lgamma(0.5 * (d - 1)) - std::lgamma(0.5 * d);
    auto density = [&](double x) { return std::exp(0.5 * (d - 3) * std::log1p(-x * x) - log_z); };
    int it = 0;
    double last_change = 0;
    const int lloyd_iters = 300, max_iter = lloyd_iters + 100;
    for (; it < max_iter; ++it) {
      lloyd_map(c_, nc);
      double change = 0;
      if (it < lloyd_iters) {
        for (int i = 0; i < L; ++i) { change = std::max(change, std::abs(nc[i] - c_[i])); c_[i] = nc[i]; }
      } else {
        // Newton: solve (I - J) delta = T(c) - c with J_i,i-1 = fa/2, J_i,i = (fa+fb)/2, J_i,i+1 = fb/2,
        // fa = f(a)(T_i - a)/M0_i, fb = f(b)(b - T_i)/M0_i (a, b the cell's boundaries).
        std::vector<double> lo(L, 0.0), di(L, 1.0), up(L, 0.0), rhs(L);
        for (int i = 0; i < L; ++i) {
          const double M0 = m0[i + 1] - m0[i];
          const double fa = i > 0 ? density(t[i - 1]) * (nc[i] - t[i - 1]) / M0 : 0.0;
          const double fb = i + 1 < L ? density(t[i]) * (t[i] - nc[i]) / M0 : 0.0;
          lo[i] = -0.5 * fa;
          up[i] = -0.5 * fb;
          di[i] = 1.0 - 0.5 * (fa + fb);
          rhs[i] = nc[i] - c_[i];
        }
        for (int i = 1; i < L; ++i) {  // Thomas algorithm
          const double w = lo[i] / di[i - 1];
          di[i] -= w * up[i - 1];
          rhs[i] -= w * rhs[i - 1];
        }
        std::vector<double> delta(L);
        delta[L - 1] = rhs[L - 1] / di[L - 1];
        for (int i = L - 2; i >= 0; --i) delta[i] = (rhs[i] - up[i] * delta[i + 1]) / di[i];
        bool ordered = true;
        for (int i = 0; i < L; ++i) nc[i] = c_[i] + delta[i];
        for (int i = 0; i + 1 < L; ++i) ordered = ordered && nc[i] < nc[i + 1];
        if (!ordered) lloyd_map(c_, nc);  // fall back to a plain Lloyd step
        symmetrize(nc);
        for (int i = 0; i < L; ++i) { change = std::max(change, std::abs(nc[i] - c_[i])); c_[i] = nc[i]; }
      }
      last_change = change;
      if (change < 1e-12 * sigma) break;
    }
    iters_ = it + 1;
    final_change_ = last_change / sigma;
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
