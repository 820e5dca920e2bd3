// turboquant/codebook.h — Lloyd-Max scalar quantizer for one coordinate of a uniformly random unit
// vector in R^d: density f_d(x) ∝ (1 - x^2)^((d-3)/2) on [-1, 1] (not the Gaussian approximation).
#pragma once
#include <cstdint>
#include <vector>

namespace tq {

class Codebook {
 public:
  // Cached per (d, b), computed once in double precision; thread-safe. d >= 2, b = 0..8
  // (b = 0 is the single centroid 0, used by the 1-bit prod codec whose mse stage is empty).
  static const Codebook& get(int d, int bits);

  int dim() const { return d_; }
  int bits() const { return b_; }
  int levels() const { return int(c_.size()); }
  const std::vector<double>& centroids() const { return c_; }   // ascending, 2^b values
  const std::vector<double>& boundaries() const { return t_; }  // 2^b - 1 midpoints, ascending
  const std::vector<float>& centroids_f32() const { return cf_; }
  // E[(x - Q(x))^2] for one coordinate under f_d, from the same quadrature that built the codebook.
  double mse_per_coord() const { return mse_; }
  // d * mse_per_coord: the distortion E||u - û||^2 of a unit vector (the paper's D_mse).
  double distortion() const { return double(d_) * mse_; }
  int lloyd_iterations() const { return iters_; }
  // Largest centroid move of the last iteration, in units of the coordinate's standard deviation.
  double final_change() const { return final_change_; }

  // Index of the nearest centroid (ties to the lower index).
  uint32_t quantize(float x) const {
    // Branch-light binary search over the boundaries.
    uint32_t lo = 0, n = uint32_t(tf_.size());
    while (n > 0) {
      const uint32_t half = n / 2;
      if (x > tf_[lo + half]) { lo += half + 1; n -= half + 1; } else { n = half; }
    }
    return lo;
  }

  Codebook(int d, int b);  // computes; prefer get()

 private:
  int d_, b_, iters_ = 0;
  double mse_ = 0, final_change_ = 0;
  std::vector<double> c_, t_;
  std::vector<float> cf_, tf_;
};

// Density law helpers (exposed for tests): E over f_d of x^k restricted to [a, b], normalized so
// that the whole interval [-1, 1] has mass 1.
double beta_coord_moment(int d, int k, double a, double b);

}  // namespace tq
