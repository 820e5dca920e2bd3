// bench/study_pv_tail.cpp — how the 8-bit attention weights of the quad-V decode (PV on int8 tensor
// cores, docs/CUDA.md "Session 8") hold up in a long context with a diffuse tail, where the proxy
// model (512-token windows) cannot tell. One query head, T tokens, synthetic scores in the log2
// domain: token 0 is a sink `delta` above the tail's mean, the tail is N(0, sigma^2). V rows are
// random directions of lognormal norm, as int8 (the same int8 rows for every scheme, so only the
// weights differ). Tokens are visited in order in 32-token groups (a consumer warp's block pair)
// with an online softmax, as the kernel does. The output of each scheme is compared with the same
// sum in double with exact weights (rel. L2, mean over trials):
//   fp16    : w = fp16(p · n)                           (the row-layout kernel's P^T)
//   u8/pair : p · n in 255 levels of the group's max   (the quad kernel's P^T today)
//   u8/n128 : p · n in 255 levels of max(n) over 128 tokens, p <= 1 (a scale shared across pairs,
//             the session-7 CPU study; rejected in session 8 by the argument this program checks)
//   pow2/2b : int accumulators carried across groups: a power-of-two scale 2^E, the running max
//             kept integral so that a new max only moves E; a group too large for 255 levels
//             shifts the accumulators right; a group whose max falls below 64 levels (2 bits lost)
//             flushes them into float and takes a finer E. Also counts its events per group.
//   e4m3    : w = e4m3(p · n · 2^6) / 2^6, saturating (what an fp8 PV on wgmma would use: no
//             per-group scale, so no max reduction per pair and fp32 accumulators; 2^6 keeps
//             n <= 7 unclipped and underflows weights below 2^-15)
//   e4m3x2  : w as the sum of two e4m3 values, hi = e4m3(w · 2^6) and lo = e4m3(w · 2^6 - hi)
//             (with a GQA group of <= 4 heads the two fit the N = 8 columns of one mma: the
//             unused half of today's B operand; the two output columns are added once per segment)
//   u16/fix : w in 16-bit fixed point, round(w · 256 · 255 / nmax), nmax = the largest V norm of
//             the sequence: as two u8 columns (hi, lo) of the int8 mma's unused N half, and a
//             scale that does not change from pair to pair, the int32 accumulators run across
//             pairs (flushed to float only when the running max moves) — no per-pair max
//             reduction and no per-pair conversion
//   u16/dyn : the same with the bound the kernel can know (branch qv16): twice the largest V norm of
//             the first group, raised to twice a group's largest norm when one exceeds it
//   study_pv_tail [trials=8]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "turboquant/half.h"

namespace {

constexpr int kD = 64;      // head dim: the weights' precision does not depend on it
constexpr int kGroup = 32;  // tokens per block pair of one consumer warp

float to_fp16(float x) { return tq::half_to_float(tq::float_to_half(x)); }

// Round to nearest (even) fp8 e4m3: 3 mantissa bits, exponents -6 .. 8 (subnormals down to 2^-9),
// saturating at 448 (cvt.rn.satfinite.e4m3x2.f32).
double to_e4m3(double x) {
  const double a = std::fabs(x);
  if (a == 0) return 0;
  const int e = std::max(int(std::floor(std::log2(a))), -6);
  const double step = std::ldexp(1.0, e - 3);
  return std::copysign(std::min(std::nearbyint(a / step) * step, 448.0), x);
}

struct Case {
  int T;
  double delta, sigma;
};

struct Errors {
  double fp16 = 0, pair = 0, n128 = 0, pow2 = 0, e4m3 = 0, e4m3x2 = 0, u16 = 0, u16d = 0;
  double shifts = 0, flushes = 0;  // pow2 events per group
};

Errors run(const Case& c, std::mt19937& rng) {
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> x(size_t(c.T)), n(size_t(c.T));
  std::vector<int8_t> v(size_t(c.T) * kD);
  for (int t = 0; t < c.T; ++t) {
    x[size_t(t)] = t == 0 ? c.delta : c.sigma * nd(rng);
    n[size_t(t)] = std::exp(0.25 * nd(rng));
    double row[kD], mx = 0;
    for (double& r : row) mx = std::max(mx, std::fabs(r = nd(rng)));
    for (int d = 0; d < kD; ++d) v[size_t(t) * kD + d] = int8_t(std::lrint(row[d] * 127.0 / mx));
  }
  // Reference: exact weights against the final max, in double.
  double M = -INFINITY;
  for (double s : x) M = std::max(M, s);
  std::vector<double> ref(kD, 0.0);
  for (int t = 0; t < c.T; ++t) {
    const double p = std::exp2(x[size_t(t)] - M);
    for (int d = 0; d < kD; ++d) ref[size_t(d)] += p * n[size_t(t)] * v[size_t(t) * kD + d];
  }
  // Online schemes: running max m, o rescaled when it rises; l is exact (the kernel keeps it fp32).
  auto online = [&](auto weight) {
    std::vector<double> o(kD, 0.0);
    double m = -INFINITY;
    for (int t0 = 0; t0 < c.T; t0 += kGroup) {
      const int t1 = std::min(c.T, t0 + kGroup);
      double gm = -INFINITY;
      for (int t = t0; t < t1; ++t) gm = std::max(gm, x[size_t(t)]);
      if (gm > m) {
        const double al = std::exp2(m - gm);
        for (double& e : o) e *= std::isfinite(m) ? al : 0.0;
        m = gm;
      }
      double gmax = 0, nmax = 0;
      for (int t = t0; t < t1; ++t) gmax = std::max(gmax, std::exp2(x[size_t(t)] - m) * n[size_t(t)]);
      for (int t = (t0 / 128) * 128; t < std::min(c.T, (t0 / 128) * 128 + 128); ++t) nmax = std::max(nmax, n[size_t(t)]);
      for (int t = t0; t < t1; ++t) {
        const double w = weight(std::exp2(x[size_t(t)] - m) * n[size_t(t)], gmax, nmax);
        for (int d = 0; d < kD; ++d) o[size_t(d)] += w * v[size_t(t) * kD + d];
      }
    }
    const double scale = std::exp2(m - M);  // m ends at M: 1
    double num = 0, den = 0;
    for (int d = 0; d < kD; ++d) {
      const double e = o[size_t(d)] * scale - ref[size_t(d)];
      num += e * e;
      den += ref[size_t(d)] * ref[size_t(d)];
    }
    return std::sqrt(num / den);
  };
  Errors E;
  E.fp16 = online([](double w, double, double) { return double(to_fp16(float(w))); });
  E.pair = online([](double w, double gmax, double) { return gmax > 0 ? std::nearbyint(w * 255.0 / gmax) * gmax / 255.0 : 0.0; });
  E.n128 = online([](double w, double, double nmax) { return std::nearbyint(w * 255.0 / nmax) * nmax / 255.0; });
  E.e4m3 = online([](double w, double, double) { return std::ldexp(to_e4m3(std::ldexp(w, 6)), -6); });
  const double nall = *std::max_element(n.begin(), n.end());
  E.u16 = online([nall](double w, double, double) {
    const double sc = 256.0 * 255.0 / nall;
    return std::nearbyint(w * sc) / sc;
  });
  {
    // The bound as the kernel keeps it, per 32-token group in visiting order (the weight function
    // sees the tokens of a group in order, so the group index follows from a token counter).
    std::vector<double> bound(size_t((c.T + kGroup - 1) / kGroup));
    double nb = 0;
    for (int t0 = 0, i = 0; t0 < c.T; t0 += kGroup, ++i) {
      double gm = 0;
      for (int t = t0; t < std::min(c.T, t0 + kGroup); ++t) gm = std::max(gm, n[size_t(t)]);
      if (gm > nb) nb = 2 * gm;
      bound[size_t(i)] = nb;
    }
    long tok = 0;
    E.u16d = online([&](double w, double, double) {
      const double sc = 65280.0 / bound[size_t(tok++ / kGroup)];
      return std::nearbyint(w * sc) / sc;
    });
  }
  E.e4m3x2 = online([](double w, double, double) {
    const double hi = to_e4m3(std::ldexp(w, 6));
    return std::ldexp(hi + to_e4m3(std::ldexp(w, 6) - hi), -6);
  });

  // pow2/2b: integral running max, int64 accumulators at scale 2^E (the kernel's int32 would hold
  // them: |acc| < 2^31 is checked), a float shadow for flushes.
  {
    std::vector<int64_t> acc(kD, 0);
    std::vector<double> of(kD, 0.0);  // flushed part, in units of the current max
    double m = -INFINITY;
    int e = 0;
    long groups = 0, shifts = 0, flushes = 0;
    bool overflow = false;
    for (int t0 = 0; t0 < c.T; t0 += kGroup, ++groups) {
      const int t1 = std::min(c.T, t0 + kGroup);
      double gm = -INFINITY;
      for (int t = t0; t < t1; ++t) gm = std::max(gm, x[size_t(t)]);
      if (!std::isfinite(m)) {
        m = std::ceil(gm);
      } else if (gm > m) {
        const int k = int(std::ceil(gm - m));
        m += k;
        e += k;  // acc unchanged: its value relative to the new max is 2^-k smaller
        for (double& f : of) f = std::ldexp(f, -k);
      }
      double gmax = 0;
      for (int t = t0; t < t1; ++t) gmax = std::max(gmax, std::exp2(x[size_t(t)] - m) * n[size_t(t)]);
      const double top = std::ldexp(gmax, e);
      if (top > 255.0) {  // too coarse a scale for this group: shift the accumulators right
        const int dl = int(std::ceil(std::log2(top / 255.0)));
        for (int64_t& a : acc) a >>= dl;  // arithmetic shift, as SHF.R.S32 would
        e -= dl;
        ++shifts;
      } else if (top < 64.0) {  // 2 bits lost: flush into the float shadow, take a finer scale
        for (int d = 0; d < kD; ++d) of[size_t(d)] += std::ldexp(double(acc[size_t(d)]), -e), acc[size_t(d)] = 0;
        e = int(std::floor(std::log2(255.0 / gmax)));
        ++flushes;
      }
      for (int t = t0; t < t1; ++t) {
        const int64_t u = std::llrint(std::ldexp(std::exp2(x[size_t(t)] - m) * n[size_t(t)], e));
        for (int d = 0; d < kD; ++d) {
          acc[size_t(d)] += u * v[size_t(t) * kD + d];
          overflow = overflow || std::llabs(acc[size_t(d)]) >= (int64_t(1) << 31);
        }
      }
    }
    const double scale = std::exp2(m - M);  // m: integral, >= M; the weights were 2^(x - m)
    double num = 0, den = 0;
    for (int d = 0; d < kD; ++d) {
      const double o = (of[size_t(d)] + std::ldexp(double(acc[size_t(d)]), -e)) * scale;
      num += (o - ref[size_t(d)]) * (o - ref[size_t(d)]);
      den += ref[size_t(d)] * ref[size_t(d)];
    }
    E.pow2 = overflow ? INFINITY : std::sqrt(num / den);
    E.shifts = double(shifts) / double(groups);
    E.flushes = double(flushes) / double(groups);
  }
  return E;
}

}  // namespace

int main(int argc, char** argv) {
  const int trials = argc > 1 ? std::atoi(argv[1]) : 8;
  std::mt19937 rng(std::random_device{}());
  std::printf("rel. L2 error of the attention output against exact weights (mean of %d trials); pow2 events per group\n",
              trials);
  std::printf("| T | sink delta | tail sigma | fp16 | u8/pair | u8/n128 | pow2/2b | e4m3 | e4m3x2 | u16/fix | u16/dyn | shifts | flushes |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int T : {1024, 16384, 131072})
    for (double delta : {0.0, 8.0, 16.0})
      for (double sigma : {1.0, 3.0}) {
        Errors s;
        for (int i = 0; i < trials; ++i) {
          const Errors e = run({T, delta, sigma}, rng);
          s.fp16 += e.fp16 / trials; s.pair += e.pair / trials; s.n128 += e.n128 / trials; s.pow2 += e.pow2 / trials;
          s.e4m3 += e.e4m3 / trials; s.e4m3x2 += e.e4m3x2 / trials; s.u16 += e.u16 / trials;
          s.u16d += e.u16d / trials;
          s.shifts += e.shifts / trials; s.flushes += e.flushes / trials;
        }
        std::printf("| %dK | %.0f | %.0f | %.2e | %.2e | %.2e | %.2e | %.2e | %.2e | %.2e | %.2e | %.3f | %.3f |\n", T / 1024,
                    delta, sigma, s.fp16, s.pair, s.n128, s.pow2, s.e4m3, s.e4m3x2, s.u16, s.u16d, s.shifts, s.flushes);
      }
  return 0;
}
