// src/core/rotation.cpp — seeded randomized Hadamard and dense Haar rotations.
#include "turboquant/rotation.h"

#include <cmath>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <tuple>
#include <type_traits>

#include "turboquant/error.h"

namespace tq {

struct Rng::State {
  std::mt19937_64 gen;
};

Rng::Rng(uint64_t seed) : s_(std::make_shared<State>()) { s_->gen.seed(seed); }
uint64_t Rng::next_u64() { return s_->gen(); }
double Rng::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
double Rng::normal() {
  if (have_spare_) { have_spare_ = false; return spare_; }
  double u1 = 0;
  do { u1 = uniform(); } while (u1 <= 0.0);
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1)), th = 2.0 * 3.14159265358979323846 * u2;
  spare_ = r * std::sin(th);
  have_spare_ = true;
  return r * std::cos(th);
}

template <typename T>
static void fwht_impl(T* x, int n) {
  for (int h = 1; h < n; h <<= 1) {
    for (int i = 0; i < n; i += 2 * h) {
      for (int j = i; j < i + h; ++j) {
        const T a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  const T s = T(1) / std::sqrt(T(n));
  for (int i = 0; i < n; ++i) x[i] *= s;
}
void fwht(float* x, int n) { fwht_impl(x, n); }
void fwht(double* x, int n) { fwht_impl(x, n); }

std::vector<double> haar_orthogonal(int d, Rng& rng) {
  // Householder QR of a Gaussian matrix A = QR; Q·diag(sign(R_ii)) is Haar distributed.
  std::vector<double> a(size_t(d) * d);
  for (auto& v : a) v = rng.normal();
  std::vector<double> q(size_t(d) * d, 0.0), vs(size_t(d) * d, 0.0), diag(d);
  // a is column-major view: column j = a[j*d .. j*d+d) (the Gaussian entries are i.i.d. anyway).
  for (int k = 0; k < d; ++k) {
    double* col = &a[size_t(k) * d];
    double norm = 0;
    for (int i = k; i < d; ++i) norm += col[i] * col[i];
    norm = std::sqrt(norm);
    const double alpha = col[k] > 0 ? -norm : norm;  // R_kk = alpha
    diag[k] = alpha;
    double* v = &vs[size_t(k) * d];
    for (int i = k; i < d; ++i) v[i] = col[i];
    v[k] -= alpha;
    double vn = 0;
    for (int i = k; i < d; ++i) vn += v[i] * v[i];
    if (vn > 0) {
      for (int j = k + 1; j < d; ++j) {  // apply H_k = I - 2vv^T/vn to the remaining columns
        double* cj = &a[size_t(j) * d];
        double dot = 0;
        for (int i = k; i < d; ++i) dot += v[i] * cj[i];
        const double f = 2 * dot / vn;
        for (int i = k; i < d; ++i) cj[i] -= f * v[i];
      }
    }
  }
  // Q = H_0 H_1 ... H_{d-1} applied to the identity, kept column-major (qc[j*d + i] = Q_ij) so the
  // inner loops run over contiguous memory; sign fix Q := Q diag(sign(R_kk)) makes the law Haar.
  std::vector<double> qc(size_t(d) * d, 0.0);
  for (int i = 0; i < d; ++i) qc[size_t(i) * d + i] = 1.0;
  for (int k = d - 1; k >= 0; --k) {
    const double* v = &vs[size_t(k) * d];
    double vn = 0;
    for (int i = k; i < d; ++i) vn += v[i] * v[i];
    if (vn == 0) continue;
    for (int j = 0; j < d; ++j) {
      double* cj = &qc[size_t(j) * d];
      double dot = 0;
      for (int i = k; i < d; ++i) dot += v[i] * cj[i];
      const double f = 2 * dot / vn;
      for (int i = k; i < d; ++i) cj[i] -= f * v[i];
    }
  }
  for (int i = 0; i < d; ++i)
    for (int k = 0; k < d; ++k) q[size_t(i) * d + k] = diag[k] < 0 ? -qc[size_t(k) * d + i] : qc[size_t(k) * d + i];
  return q;
}

namespace {
bool is_pow2(int d) { return d > 0 && (d & (d - 1)) == 0; }

// Rotations are shared: a (kind, d, seed) that some codec still holds is returned again (weak
// references), and the most recently used ones are kept alive up to a byte budget (strong
// references, least recently used dropped first), so that codecs created one after another do not
// redo an O(d^3) QR while a long-lived process (an index server, the fuzzers) does not keep every
// dense matrix it ever built (12 d^2 bytes each: 200 MB at d = 4096).
class RotationCache {
 public:
  using Key = std::tuple<int, int, uint64_t>;

  std::shared_ptr<const Rotation> find(const Key& k) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(k);
    if (it == live_.end()) return nullptr;
    std::shared_ptr<const Rotation> r = it->second.lock();
    if (!r) {
      live_.erase(it);
      return nullptr;
    }
    touch(k, r);
    return r;
  }
  // Returns the cached rotation for k if another thread built it first, else r.
  std::shared_ptr<const Rotation> insert(const Key& k, std::shared_ptr<const Rotation> r, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& w = live_[k];
    if (auto prev = w.lock()) r = prev;
    else w = r;
    touch(k, r, bytes);
    return r;
  }
  size_t retained() {
    std::lock_guard<std::mutex> lock(mu_);
    return retained_;
  }
  void set_budget(size_t b) {
    std::lock_guard<std::mutex> lock(mu_);
    budget_ = b;
    trim();
  }

 private:
  struct Recent {
    Key key;
    std::shared_ptr<const Rotation> rot;
    size_t bytes;
  };
  // Moves k to the front of the recent list (adding it if absent), then trims to the budget (a
  // single rotation larger than the budget is shared while held but not retained).
  void touch(const Key& k, const std::shared_ptr<const Rotation>& r, size_t bytes = 0) {
    for (auto it = recent_.begin(); it != recent_.end(); ++it)
      if (it->key == k) {
        recent_.splice(recent_.begin(), recent_, it);
        return;
      }
    if (bytes == 0) bytes = r->bytes();
    recent_.push_front({k, r, bytes});
    retained_ += bytes;
    trim();
  }
  void trim() {
    while (retained_ > budget_ && !recent_.empty()) {
      retained_ -= recent_.back().bytes;
      recent_.pop_back();
    }
    for (auto it = live_.begin(); it != live_.end();)  // forget entries nobody holds any more
      it = it->second.expired() ? live_.erase(it) : std::next(it);
  }

  std::mutex mu_;
  std::map<Key, std::weak_ptr<const Rotation>> live_;
  std::list<Recent> recent_;
  size_t retained_ = 0;
  size_t budget_ = Rotation::kCacheBudget;
};

RotationCache& rotation_cache() {
  static RotationCache c;
  return c;
}
}  // namespace

std::shared_ptr<const Rotation> Rotation::create(RotationKind kind, int d, uint64_t seed) {
  TQ_CHECK_ARG(d >= 1, "rotation dimension must be >= 1, got {}", d);
  if (kind == RotationKind::kAuto) kind = is_pow2(d) ? RotationKind::kHadamard : RotationKind::kDense;
  TQ_CHECK_ARG(kind != RotationKind::kHadamard || is_pow2(d),
               "Hadamard rotation needs a power-of-two dimension, got {} (use rot=dense)", d);
  // A dense rotation costs d^2 doubles + floats and an O(d^3) QR: 4096 is ~200 MB and seconds; beyond
  // that a file or a caller could make us allocate gigabytes and compute for minutes. Refuse it.
  TQ_CHECK_ARG(kind != RotationKind::kDense || d <= kMaxDenseDim,
               "dense rotation of dimension {} is too large (max {}; power-of-two dimensions use Hadamard)", d,
               kMaxDenseDim);
  RotationCache& rc = rotation_cache();
  const auto key = std::make_tuple(int(kind), d, seed);
  if (auto hit = rc.find(key)) return hit;
  std::shared_ptr<Rotation> r(new Rotation());
  r->kind_ = kind;
  r->d_ = d;
  Rng rng(seed);
  if (kind == RotationKind::kHadamard) {
    for (int k = 0; k < kHadamardRounds; ++k) {
      r->signs_[k].resize(d);
      for (int i = 0; i < d; ++i) r->signs_[k][i] = (rng.next_u64() >> 63) ? -1.0f : 1.0f;
    }
  } else if (kind == RotationKind::kDense) {
    r->md_ = haar_orthogonal(d, rng);
    r->m_.assign(r->md_.begin(), r->md_.end());
  }
  return rc.insert(key, r, r->bytes());
}

size_t Rotation::bytes() const {
  size_t b = md_.size() * sizeof(double) + m_.size() * sizeof(float);
  for (const auto& s : signs_) b += s.size() * sizeof(float);
  return b;
}

size_t Rotation::cache_retained_bytes() { return rotation_cache().retained(); }
void Rotation::set_cache_budget(size_t bytes) { rotation_cache().set_budget(bytes); }

template <typename T>
static void apply_dense(const std::vector<double>& md, const std::vector<float>& mf, int d, bool transpose,
                        const T* x, T* y) {
  // float: the fp32 matrix with double accumulation; double (reference): the double matrix.
  std::vector<T> tmp(x, x + d);
  auto m = [&](size_t r, size_t c) -> double {
    if constexpr (std::is_same_v<T, double>) return md[r * d + c]; else return double(mf[r * d + c]);
  };
  for (int i = 0; i < d; ++i) {
    double acc = 0;
    if (!transpose) {
      for (int j = 0; j < d; ++j) acc += m(i, j) * double(tmp[j]);
    } else {
      for (int j = 0; j < d; ++j) acc += m(j, i) * double(tmp[j]);
    }
    y[i] = T(acc);
  }
}

template <typename T>
static void apply_hadamard(const std::vector<float>* signs, int d, bool inverse, const T* x, T* y) {
  if (x != y) for (int i = 0; i < d; ++i) y[i] = x[i];
  constexpr int R = Rotation::kHadamardRounds;
  if (!inverse) {  // y = H D_R ... H D_2 H D_1 x
    for (int r = 0; r < R; ++r) {
      for (int i = 0; i < d; ++i) y[i] *= T(signs[r][i]);
      fwht_impl(y, d);
    }
  } else {  // x = D_1 H D_2 H ... D_R H y
    for (int r = R - 1; r >= 0; --r) {
      fwht_impl(y, d);
      for (int i = 0; i < d; ++i) y[i] *= T(signs[r][i]);
    }
  }
}

void Rotation::forward(const float* x, float* y) const {
  if (kind_ == RotationKind::kHadamard) apply_hadamard(signs_, d_, false, x, y);
  else if (kind_ == RotationKind::kDense) apply_dense(md_, m_, d_, false, x, y);
  else if (x != y) std::copy(x, x + d_, y);
}
void Rotation::inverse(const float* y, float* x) const {
  if (kind_ == RotationKind::kHadamard) apply_hadamard(signs_, d_, true, y, x);
  else if (kind_ == RotationKind::kDense) apply_dense(md_, m_, d_, true, y, x);
  else if (x != y) std::copy(y, y + d_, x);
}
void Rotation::forward(const double* x, double* y) const {
  if (kind_ == RotationKind::kHadamard) apply_hadamard(signs_, d_, false, x, y);
  else if (kind_ == RotationKind::kDense) apply_dense(md_, m_, d_, false, x, y);
  else if (x != y) std::copy(x, x + d_, y);
}
void Rotation::inverse(const double* y, double* x) const {
  if (kind_ == RotationKind::kHadamard) apply_hadamard(signs_, d_, true, y, x);
  else if (kind_ == RotationKind::kDense) apply_dense(md_, m_, d_, true, y, x);
  else if (x != y) std::copy(y, y + d_, x);
}

}  // namespace tq
