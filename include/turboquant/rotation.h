// turboquant/rotation.h — seeded random rotations, applied in fp32 (never fp16/bf16).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "turboquant/codec.h"

namespace tq {

// Deterministic across platforms: mt19937_64 + our own Box-Muller (std::normal_distribution is
// implementation-defined).
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next_u64();
  double uniform();   // [0, 1)
  double normal();    // N(0, 1)
 private:
  struct State;
  std::shared_ptr<State> s_;
  bool have_spare_ = false;
  double spare_ = 0;
};

class Rotation {
 public:
  // kAuto: Hadamard when d is a power of two, else dense. kHadamard with d not a power of two throws.
  static std::shared_ptr<const Rotation> create(RotationKind kind, int d, uint64_t seed);

  RotationKind kind() const { return kind_; }
  int dim() const { return d_; }
  // y = R x and x = R^T y; in-place (x == y) allowed.
  void forward(const float* x, float* y) const;
  void inverse(const float* y, float* x) const;
  // Reference versions in double.
  void forward(const double* x, double* y) const;
  void inverse(const double* y, double* x) const;

  // Randomized Hadamard: R = H·D3·H·D2·H·D1 (H the orthonormal Walsh-Hadamard matrix, D_i = diag(±1)).
  // Why three rounds (measured, tests/core/test_codec.cpp AdversarialInputs): one round maps a
  // one-hot input to a flat ±1/sqrt(d) vector, quantized 2.2x worse than optimum at 2 bits; two
  // rounds give binomial lattice values (spacing 2/d, comparable to a 4-bit cell), still 12% worse
  // than optimum at 4 bits, d=128; the third round makes the coordinates look continuous Gaussian.
  static constexpr int kHadamardRounds = 3;
  static constexpr int kMaxDenseDim = 4096;  // dense (Haar) rotations: d^2 memory, O(d^3) to build
  const std::vector<float>& signs(int round) const { return signs_[round]; }  // ±1, d each
  const std::vector<float>& matrix() const { return m_; }                     // dense: d*d row-major
  size_t bytes() const;  // memory held (dense: 12 d^2 bytes)
  // create() shares a rotation while anyone holds it and keeps the most recently used ones alive up
  // to a budget (kCacheBudget by default); what the cache itself keeps alive now, and the budget
  // (both for tests and diagnostics; a smaller budget takes effect at once).
  static constexpr size_t kCacheBudget = size_t(256) << 20;
  static size_t cache_retained_bytes();
  static void set_cache_budget(size_t bytes);

 private:
  Rotation() = default;
  RotationKind kind_ = RotationKind::kNone;
  int d_ = 0;
  std::vector<float> signs_[kHadamardRounds];
  std::vector<float> m_;
  std::vector<double> md_;
};

// In-place orthonormal fast Walsh-Hadamard transform (n a power of two).
void fwht(float* x, int n);
void fwht(double* x, int n);

// Dense Haar-random orthogonal d x d matrix, row-major, in double (QR of a Gaussian, sign-fixed).
std::vector<double> haar_orthogonal(int d, Rng& rng);

}  // namespace tq
