// tests/test_util.h — helpers shared by the test folders (each tests/<area> includes it as
// "test_util.h"): seeded Gaussian vectors, a fresh per-test seed, relative L2 errors and running
// the `tq` CLI.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace tq::testing {

// ||a - b|| / ||b|| over n values (||a - b|| when b is zero), double sums.
inline double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
inline double rel_l2(const std::vector<float>& a, const std::vector<float>& b) { return rel_l2(a.data(), b.data(), b.size()); }

// n i.i.d. N(0, sd^2) floats from a seeded mt19937_64 (the same seed gives the same vector).
inline std::vector<float> randn(size_t n, uint64_t seed, float sd = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> x(n);
  for (auto& v : x) v = nd(g);
  return x;
}

struct CliResult {
  int status;       // exit status; 128 + signal when killed (an abort shows as 134)
  std::string out;  // stdout, plus stderr when merged
};

// Runs a shell command line; stdout, plus stderr when merged.
inline CliResult run_shell(const std::string& cmd, bool merge_stderr = true) {
  FILE* p = popen((cmd + (merge_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : (WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1), out};
}

// Runs the tq CLI (TQ_CLI_PATH) with `args` in shell syntax.
inline CliResult run_cli(const std::string& args, bool merge_stderr = true) {
  return run_shell(std::string(TQ_CLI_PATH) + " " + args, merge_stderr);
}

}  // namespace tq::testing

// Declares `std::mt19937 rng` seeded freshly for this run; the seed is printed with every failure
// in the enclosing scope (gtest's SCOPED_TRACE), so a failing draw can be replayed.
#define TQ_FRESH_RNG(rng)                                                 \
  const unsigned rng##_seed = std::random_device{}();                     \
  SCOPED_TRACE(::testing::Message() << "seed " << rng##_seed);            \
  std::mt19937 rng(rng##_seed)
