// tools/tq/ann_eval.h — what `tq ann` and bench/ann/ann_compare share: loading base/query .npy
// files, exact ground truth, recall curves, timing. Header-only so the comparison tool (built only
// with faiss) needs no extra library.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "turboquant/error.h"
#include "turboquant/index.h"
#include "turboquant/npy.h"

namespace tq::ann {

struct Matrix {
  std::vector<float> x;
  size_t n = 0;
  int d = 0;
  const float* row(size_t i) const { return x.data() + i * size_t(d); }
};

inline Matrix load_matrix(const std::string& path, bool normalize) {
  NpyArray a = npy_load(path);
  TQ_CHECK_ARG(a.shape.size() == 2, "{}: expected a 2-D array [n, d], got {} dimensions", path, a.shape.size());
  TQ_CHECK_ARG(a.shape[0] > 0 && a.shape[1] > 0, "{}: empty array", path);
  Matrix m;
  m.n = size_t(a.shape[0]);
  m.d = int(a.shape[1]);
  m.x = a.to_f32();
  for (size_t i = 0; i < m.x.size(); ++i)
    TQ_CHECK_ARG(std::isfinite(m.x[i]), "{}: row {} has a non-finite value", path, i / size_t(m.d));
  if (normalize) {
    for (size_t i = 0; i < m.n; ++i) {
      double s = 0;
      for (int j = 0; j < m.d; ++j) s += double(m.x[i * m.d + j]) * m.x[i * m.d + j];
      const float inv = s > 0 ? float(1.0 / std::sqrt(s)) : 0.f;
      for (int j = 0; j < m.d; ++j) m.x[i * m.d + j] *= inv;
    }
  }
  return m;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Exact k nearest base rows of every query (fp32 products, vectorized; ties to the lower index).
// Threads over queries.
inline std::vector<int64_t> ground_truth(const Matrix& base, const Matrix& q, int k, Metric metric, int threads) {
  TQ_CHECK_ARG(base.d == q.d, "base has dimension {}, queries {}", base.d, q.d);
  TQ_CHECK_ARG(k >= 1 && size_t(k) <= base.n, "k = {} must be in 1..{}", k, base.n);
  std::vector<float> bnorm(base.n);
  for (size_t i = 0; i < base.n; ++i) {
    float s = 0;
    for (int j = 0; j < base.d; ++j) s += base.row(i)[j] * base.row(i)[j];
    bnorm[i] = s;
  }
  std::vector<int64_t> gt(q.n * size_t(k));
  const int d = base.d;
#pragma omp parallel num_threads(threads > 0 ? threads : 1)
  {
    std::vector<std::pair<float, int64_t>> sc(base.n);
#pragma omp for schedule(dynamic, 4)
    for (long qi = 0; qi < long(q.n); ++qi) {
      const float* qq = q.row(size_t(qi));
      for (size_t i = 0; i < base.n; ++i) {
        const float* b = base.row(i);
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < d; ++j) s += qq[j] * b[j];
        // Larger is better: ip, or -(||b||^2 - 2 q.b) for L2 (||q||^2 does not change the order).
        sc[i] = {metric == Metric::kL2 ? 2 * s - bnorm[i] : s, int64_t(i)};
      }
      std::partial_sort(sc.begin(), sc.begin() + k, sc.end(), [](const auto& a, const auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
      });
      for (int j = 0; j < k; ++j) gt[size_t(qi) * k + j] = sc[j].second;
    }
  }
  return gt;
}

// recall_at_1_at_k[j] = share of queries whose true nearest neighbour is among the first j+1
// results (ids: nq x k_res, gt: nq x k_gt, first column = nearest).
inline std::vector<double> recall_1_at_k(const std::vector<int64_t>& ids, int k_res, const std::vector<int64_t>& gt,
                                         int k_gt, size_t nq) {
  std::vector<double> r(k_res, 0.0);
  for (size_t i = 0; i < nq; ++i)
    for (int j = 0; j < k_res; ++j)
      if (ids[i * k_res + j] == gt[i * k_gt]) {
        for (int t = j; t < k_res; ++t) r[t] += 1.0;
        break;
      }
  for (auto& v : r) v /= double(nq);
  return r;
}

// |top-k results ∩ true top-k| / k, averaged (k <= k_res, k <= k_gt).
inline double knn_recall(const std::vector<int64_t>& ids, int k_res, const std::vector<int64_t>& gt, int k_gt,
                         size_t nq, int k) {
  double s = 0;
  for (size_t i = 0; i < nq; ++i) {
    int hit = 0;
    for (int j = 0; j < k; ++j)
      for (int t = 0; t < k; ++t) hit += ids[i * k_res + j] == gt[i * k_gt + t];
    s += double(hit) / k;
  }
  return s / double(nq);
}

}  // namespace tq::ann
