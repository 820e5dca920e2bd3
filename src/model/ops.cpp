// src/model/ops.cpp — forward-pass operations (contracts and shapes: turboquant/model/ops.h).
#include "turboquant/model/ops.h"

#include <algorithm>
#include <cmath>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "turboquant/error.h"

namespace tq::model {

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n > 0 ? n : int(std::max(1u, std::thread::hardware_concurrency())));
#else
  (void)n;
#endif
}

void matmul_ref(const float* x, const float* W, float* y, int T, int in, int out) {
  for (int t = 0; t < T; ++t)
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int i = 0; i < in; ++i) s += double(x[int64_t(t) * in + i]) * double(W[int64_t(o) * in + i]);
      y[int64_t(t) * out + o] = float(s);
    }
}

// Blocks of 4 weight rows (kept in L1 while every token's x streams past) and one thread per
// block range; the inner dot products vectorize through `omp simd` reductions.
void matmul(const float* x, const float* W, float* y, int T, int in, int out) {
  const int64_t work = int64_t(T) * in * out;
  const int nblk = (out + 3) / 4;
#pragma omp parallel for schedule(static) if (work > (1 << 18))
  for (int b = 0; b < nblk; ++b) {
    const int o0 = 4 * b;
    const float* w0 = W + int64_t(o0) * in;
    if (o0 + 4 <= out) {
      const float *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
      for (int t = 0; t < T; ++t) {
        const float* xr = x + int64_t(t) * in;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int i = 0; i < in; ++i) {
          s0 += xr[i] * w0[i];
          s1 += xr[i] * w1[i];
          s2 += xr[i] * w2[i];
          s3 += xr[i] * w3[i];
        }
        float* yr = y + int64_t(t) * out + o0;
        yr[0] = s0, yr[1] = s1, yr[2] = s2, yr[3] = s3;
      }
    } else {
      for (int o = o0; o < out; ++o) {
        const float* wr = W + int64_t(o) * in;
        for (int t = 0; t < T; ++t) {
          const float* xr = x + int64_t(t) * in;
          float s = 0;
#pragma omp simd reduction(+ : s)
          for (int i = 0; i < in; ++i) s += xr[i] * wr[i];
          y[int64_t(t) * out + o] = s;
        }
      }
    }
  }
}

void rmsnorm(const float* x, const float* g, float eps, float* y, int T, int dim) {
  for (int t = 0; t < T; ++t) {
    const float* xr = x + int64_t(t) * dim;
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    const float r = float(1.0 / std::sqrt(ss / dim + double(eps)));
    float* yr = y + int64_t(t) * dim;
    for (int i = 0; i < dim; ++i) yr[i] = xr[i] * r * g[i];
  }
}

void rope(float* x, int T, int H, int hd, int pos0, const RopeParams& p) {
  TQ_CHECK_ARG(p.n_rot >= 0 && p.n_rot % 2 == 0 && p.n_rot <= hd, "rope: n_rot {} for head dim {}", p.n_rot, hd);
  std::vector<double> inv(size_t(p.n_rot / 2));
  for (int i = 0; i < p.n_rot / 2; ++i) {
    inv[size_t(i)] = p.freq_scale * std::pow(p.theta, -2.0 * i / p.n_rot);
    if (p.freq_factors) inv[size_t(i)] /= double(p.freq_factors[i]);
  }
  for (int t = 0; t < T; ++t) {
    const double pos = double(pos0 + t);
    for (int i = 0; i < p.n_rot / 2; ++i) {
      const double a = pos * inv[size_t(i)];
      const float c = float(std::cos(a)), s = float(std::sin(a));
      for (int h = 0; h < H; ++h) {
        float* v = x + (int64_t(t) * H + h) * hd + 2 * i;
        const float x0 = v[0], x1 = v[1];
        v[0] = x0 * c - x1 * s;
        v[1] = x0 * s + x1 * c;
      }
    }
  }
}

void swiglu(const float* gate, const float* up, float* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void attention_ref(const float* q, const float* k, const float* v, float* out, int n, int len, int Hq, int Hkv,
                   int hd, float scale) {
  TQ_CHECK_ARG(n >= 0 && n <= len && Hkv > 0 && Hq % Hkv == 0 && hd > 0,
               "attention: n={} len={} Hq={} Hkv={} hd={}", n, len, Hq, Hkv, hd);
  const int group = Hq / Hkv;
#pragma omp parallel for collapse(2) schedule(static) if (int64_t(n) * Hq * len * hd > (1 << 16))
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < Hq; ++h) {
      const int last = len - n + i;  // causal: positions 0..last
      const float* qi = q + (int64_t(i) * Hq + h) * hd;
      const int kvh = h / group;
      std::vector<double> p(size_t(last) + 1);
      double m = -INFINITY;
      for (int j = 0; j <= last; ++j) {
        const float* kj = k + (int64_t(j) * Hkv + kvh) * hd;
        double s = 0;
        for (int d = 0; d < hd; ++d) s += double(qi[d]) * kj[d];
        p[size_t(j)] = s * scale;
        m = std::max(m, p[size_t(j)]);
      }
      double z = 0;
      for (auto& x : p) z += (x = std::exp(x - m));
      std::vector<double> acc(size_t(hd), 0.0);
      for (int j = 0; j <= last; ++j) {
        const float* vj = v + (int64_t(j) * Hkv + kvh) * hd;
        for (int d = 0; d < hd; ++d) acc[size_t(d)] += p[size_t(j)] * vj[d];
      }
      float* o = out + (int64_t(i) * Hq + h) * hd;
      for (int d = 0; d < hd; ++d) o[d] = float(acc[size_t(d)] / z);
    }
}

void log_softmax(const float* logits, double* lp, int n) {
  double m = -INFINITY;
  for (int i = 0; i < n; ++i) m = std::max(m, double(logits[i]));
  double z = 0;
  for (int i = 0; i < n; ++i) z += std::exp(double(logits[i]) - m);
  const double lz = m + std::log(z);
  for (int i = 0; i < n; ++i) lp[i] = double(logits[i]) - lz;
}

double kl_divergence(const double* lp, const double* lq, int n) {
  double kl = 0;
  for (int i = 0; i < n; ++i)
    if (lp[i] > -745) kl += std::exp(lp[i]) * (lp[i] - lq[i]);  // exp underflows to 0 below -745
  return std::max(kl, 0.0);  // rounding can leave -1e-17 for identical distributions
}

int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

int32_t sample_token(const float* logits, int n, float temp, std::mt19937_64& rng) {
  TQ_CHECK_ARG(n > 0, "sample_token: empty logits");
  if (temp <= 0) return argmax(logits, n);
  std::vector<double> p(static_cast<size_t>(n));
  double m = -INFINITY, z = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, double(logits[i]) / temp);
  for (int i = 0; i < n; ++i) z += (p[size_t(i)] = std::exp(double(logits[i]) / temp - m));
  double u = std::uniform_real_distribution<double>(0.0, z)(rng);
  for (int i = 0; i < n; ++i) {
    u -= p[size_t(i)];
    if (u < 0) return i;
  }
  return n - 1;
}

}  // namespace tq::model
