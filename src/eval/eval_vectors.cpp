// src/eval/eval_vectors.cpp — reconstruction and inner-product errors of one codec on a vector set.
#include <chrono>
#include <cmath>
#include <vector>

#include "turboquant/codebook.h"
#include "turboquant/error.h"
#include "turboquant/eval.h"
#include "turboquant/rotation.h"

namespace tq::eval {

VectorResult eval_vectors(const float* x, size_t n, int d, const CodecSpec& spec, const float* queries, size_t nq,
                          uint64_t seed) {
  TQ_CHECK_ARG(n >= 1 && d >= 1, "eval: need at least one vector of dimension >= 1 (got {} x {})", n, d);
  // Default real queries: a seeded sample of rows of x (real directions of the same data).
  std::vector<float> sample;
  if (queries == nullptr || nq == 0) {
    nq = std::min<size_t>(1000, n);
    sample.resize(nq * size_t(d));
    Rng r(seed ^ 0x51u);
    for (size_t i = 0; i < nq; ++i) {
      const size_t row = size_t(r.next_u64() % n);
      for (int j = 0; j < d; ++j) sample[i * d + j] = x[row * d + j];
    }
    queries = sample.data();
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto codec = Codec::create(spec, d, x, n);
  std::vector<uint8_t> codes(codec->code_size() * n);
  std::vector<float> y(n * size_t(d));
  codec->encode(x, n, size_t(d), codes.data());
  codec->decode(codes.data(), n, y.data(), size_t(d));
  const auto t1 = std::chrono::steady_clock::now();

  VectorResult r;
  r.codec = spec.name();
  r.dim = d;
  r.n = n;
  r.bits_per_value = codec->bits_per_value();
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  Rng rng(seed);
  std::vector<double> u(d);
  double rel = 0, err_tot = 0, norm_tot = 0, ipr_e = 0, ipr_s = 0, ipq_e = 0, ipq_s = 0, ipq_b = 0;
  size_t nz = 0;
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    const float* yi = y.data() + i * d;
    const float* qi = queries + ((i * 7919 + 1) % nq) * d;
    for (int j = 0; j < d; ++j) u[j] = rng.normal();
    double e = 0, s = 0, ux = 0, uy = 0, qx = 0, qy = 0;
    for (int j = 0; j < d; ++j) {
      const double xv = xi[j], yv = yi[j];
      e += (xv - yv) * (xv - yv);
      s += xv * xv;
      ux += u[j] * xv;
      uy += u[j] * yv;
      qx += double(qi[j]) * xv;
      qy += double(qi[j]) * yv;
    }
    err_tot += e;
    norm_tot += s;
    if (s > 0) { rel += e / s; ++nz; }
    ipr_e += (uy - ux) * (uy - ux);
    ipr_s += ux * ux;
    ipq_e += (qy - qx) * (qy - qx);
    ipq_s += qx * qx;
    ipq_b += (qy - qx) * qx;
  }
  r.rel_mse = nz ? rel / double(nz) : 0.0;
  r.rel_mse_total = norm_tot > 0 ? err_tot / norm_tot : 0.0;
  r.ip_rel_err_random = ipr_s > 0 ? ipr_e / ipr_s : 0.0;
  r.ip_rel_err_real = ipq_s > 0 ? ipq_e / ipq_s : 0.0;
  r.ip_bias_real = ipq_s > 0 ? ipq_b / ipq_s : 0.0;
  if (spec.id == CodecId::kTqMse && !spec.fractional && d >= 2) r.beta_optimum = Codebook::get(d, spec.bits).distortion();
  return r;
}

}  // namespace tq::eval
