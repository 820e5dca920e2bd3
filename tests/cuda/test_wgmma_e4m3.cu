// Probe of the hardware pieces an e4m3 `wgmma` PV would rest on (docs/CUDA.md "Session 13"):
//  1. wgmma.mma_async m64n8k32 f32 <- e4m3 x e4m3 with A from registers (the V^T fragments of a
//     warpgroup's lookups: warp w holds rows 16w .. 16w + 15 in the m16n8k32 A order) and B from
//     shared memory through a matrix descriptor (P^T, K-major, no swizzle: two 8 x 16-byte core
//     matrices along k); D in the m16n8 C order per warp. Checked against a float64 product of the
//     decoded bytes.
//  2. P as e4m3 hi + lo (the N columns a GQA group of 4 leaves empty): cvt.rn.satfinite.e4m3x2 on
//     the GPU byte-identical to a round-to-nearest-even model on the CPU, hi + lo within 2^-8 of p,
//     and a PV through the wgmma (heads in columns 0-3, their lo parts in 4-7) within the bound
//     that this error and fp32 accumulation give.
// GPU tests; they skip without a device. Not used by the library yet: this is the first step of a
// kernel that does not exist.
#include <gtest/gtest.h>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "turboquant/cuda/decode.h"

namespace {

#define CK(x) ASSERT_EQ((x), cudaSuccess) << cudaGetErrorString(x)

// e4m3 (fn): sign, 4 exponent bits (bias 7), 3 mantissa bits; 0x7f / 0xff are NaN, no infinity.
double e4m3_value(uint8_t b) {
  const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  const double mag = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -mag : mag;
}
bool e4m3_finite(uint8_t b) { return (b & 0x7f) != 0x7f; }
// Round to nearest, ties to the even code, saturating at +-448 (cvt.rn.satfinite), by search.
uint8_t e4m3_round(double x) {
  int best = 0;
  double bd = INFINITY;
  for (int c = 0; c < 256; ++c) {
    if (!e4m3_finite(uint8_t(c))) continue;
    const double d = std::fabs(e4m3_value(uint8_t(c)) - x);
    if (d < bd || (d == bd && (c & 1) == 0 && (best & 1) == 1)) { bd = d; best = c; }
  }
  if (x == 0.0) return std::signbit(x) ? 0x80 : 0x00;
  return uint8_t(best);
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// One warpgroup: D[64][8] = A[64][32] · B[32][8]; A row-major bytes, B as bt[n][32] (k contiguous).
// B lands in shared memory as two core matrices (8 rows n x 16 bytes k, 128 contiguous bytes) for
// k 0-15 and 16-31, `kstride` bytes apart; lbo / sbo: the descriptor's two byte-offset fields
// (expected: lbo = the k-direction stride, sbo = the stride of 8-row groups of n, unused at N = 8).
__global__ void wgmma_e4m3_probe(const uint8_t* a, const uint8_t* bt, float* d, uint32_t kstride, uint32_t lbo,
                                 uint32_t sbo) {
  __shared__ __align__(128) uint8_t sb[512];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  for (int i = tid; i < 256; i += 128) {
    const int n = i / 32, k = i % 32;
    sb[(k / 16) * kstride + n * 16 + (k % 16)] = bt[n * 32 + k];
  }
  __syncthreads();
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // generic stores -> the async proxy
  auto word = [&](int row, int k0) {
    const uint8_t* p = a + row * 32 + k0;
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  };
  const int r = 16 * warp + g;
  const uint32_t a0 = word(r, 4 * t), a1 = word(r + 8, 4 * t), a2 = word(r, 16 + 4 * t), a3 = word(r + 8, 16 + 4 * t);
  const uint64_t desc = uint64_t((smem_addr(sb) >> 4) & 0x3fff) | uint64_t((lbo >> 4) & 0x3fff) << 16 |
                        uint64_t((sbo >> 4) & 0x3fff) << 32;  // bits 62-63: 0 = no swizzle
  float d0 = 0.f, d1 = 0.f, d2 = 0.f, d3 = 0.f;
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %9, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 {%0, %1, %2, %3}, {%4, %5, %6, %7}, %8, p, 1, 1;\n}\n"
      : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc), "r"(0));
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
  asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
  d[r * 8 + 2 * t] = d0;
  d[r * 8 + 2 * t + 1] = d1;
  d[(r + 8) * 8 + 2 * t] = d2;
  d[(r + 8) * 8 + 2 * t + 1] = d3;
}

// hi = e4m3(x), lo = e4m3(x - hi) per element, by cvt.rn.satfinite.e4m3x2.f32 (two at a time).
__global__ void e4m3_split(const float* x, int n, uint8_t* hi, uint8_t* lo) {
  const int i = 2 * (blockIdx.x * blockDim.x + threadIdx.x);
  if (i + 1 >= n) return;
  uint16_t h, l;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(h) : "f"(x[i + 1]), "f"(x[i]));
  uint32_t hh;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(hh) : "h"(h));  // hi back to float through exact f16
  const float h0 = __half2float(__ushort_as_half(uint16_t(hh))), h1 = __half2float(__ushort_as_half(uint16_t(hh >> 16)));
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(l) : "f"(x[i + 1] - h1), "f"(x[i] - h0));
  hi[i] = uint8_t(h); hi[i + 1] = uint8_t(h >> 8);
  lo[i] = uint8_t(l); lo[i + 1] = uint8_t(l >> 8);
}

struct Dev {
  void* p = nullptr;
  explicit Dev(size_t n) { cudaMalloc(&p, n); }
  ~Dev() { cudaFree(p); }
  template <class T> T* as() { return static_cast<T*>(p); }
};

std::vector<float> run_wgmma(const std::vector<uint8_t>& a, const std::vector<uint8_t>& bt, uint32_t kstride, uint32_t lbo,
                             uint32_t sbo) {
  Dev da(a.size()), db(bt.size()), dd(64 * 8 * sizeof(float));
  std::vector<float> d(64 * 8, NAN);
  cudaMemcpy(da.p, a.data(), a.size(), cudaMemcpyHostToDevice);
  cudaMemcpy(db.p, bt.data(), bt.size(), cudaMemcpyHostToDevice);
  cudaMemset(dd.p, 0xff, 64 * 8 * sizeof(float));  // poison: NaN
  wgmma_e4m3_probe<<<1, 128>>>(da.as<uint8_t>(), db.as<uint8_t>(), dd.as<float>(), kstride, lbo, sbo);
  if (cudaGetLastError() != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) return {};
  cudaMemcpy(d.data(), dd.p, d.size() * sizeof(float), cudaMemcpyDeviceToHost);
  return d;
}

double rel_err(const std::vector<float>& d, const std::vector<double>& ref) {
  if (d.size() != ref.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    if (!std::isfinite(d[i])) return INFINITY;
    num += (d[i] - ref[i]) * (d[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

// The CPU model the GPU checks below rest on (runs without a GPU): every finite code rounds to
// itself, values round to a nearest code, ties go to the even code, and +-448 saturates.
TEST(CudaWgmmaProbe, E4m3CpuModelRoundTripsAndRoundsToNearest) {
  for (int c = 0; c < 256; ++c) {
    if (!e4m3_finite(uint8_t(c))) continue;
    EXPECT_EQ(e4m3_round(e4m3_value(uint8_t(c))), c == 0x80 ? 0x80 : c) << "code " << c;
  }
  EXPECT_EQ(e4m3_value(0x7e), 448.0);
  EXPECT_EQ(e4m3_round(1e6), 0x7e);
  EXPECT_EQ(e4m3_round(-1e6), 0xfe);
  EXPECT_EQ(e4m3_round(1.0 + 1.0 / 16), 0x38);  // tie between 1 (0x38, even) and 1.125 (0x39)
  EXPECT_EQ(e4m3_round(1.0 + 3.0 / 16), 0x3a);  // tie between 1.125 (0x39) and 1.25 (0x3a, even)
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> u(-500.0, 500.0);
  for (int i = 0; i < 2000; ++i) {
    const double x = u(rng);
    const double r = e4m3_value(e4m3_round(x));
    for (int c = 0; c < 256; ++c)
      if (e4m3_finite(uint8_t(c)) && std::fabs(x) <= 448.0)
        ASSERT_LE(std::fabs(r - x), std::fabs(e4m3_value(uint8_t(c)) - x)) << x;
  }
}

TEST(CudaWgmmaProbe, E4m3RegisterAAndDescriptorBMatchTheProduct) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  std::mt19937 rng(std::random_device{}());
  auto finite_byte = [&] {
    uint8_t b;
    do b = uint8_t(rng()); while (!e4m3_finite(b) || (b & 0x78) > 0x50);  // |v| < 2^4
    return b;
  };
  std::vector<uint8_t> a(64 * 32), bt(8 * 32);
  for (auto& v : a) v = finite_byte();
  for (auto& v : bt) v = finite_byte();
  std::vector<double> ref(64 * 8, 0.0);
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < 8; ++n)
      for (int k = 0; k < 32; ++k) ref[m * 8 + n] += e4m3_value(a[m * 32 + k]) * e4m3_value(bt[n * 32 + k]);
  // Products of two e4m3 values below 2^4 are exact in fp32, but Hopper's fp8 tensor cores add
  // them keeping ~14 bits (DeepSeek-V3 report, H800), so the sum may be off by ~2^-13 of its
  // largest term. A wrong fragment or descriptor layout is off by order 1: the check is 1e-2, and
  // the measured error is printed (it says what the PV design may count on).
  const double tol = 1e-2;
  const double e = rel_err(run_wgmma(a, bt, 128, 128, 256), ref);
  if (!(e < tol)) {  // say which layout the hardware took instead, for the next kernel's author
    std::printf("    k-blocks 128 B apart, lbo 128 / sbo 256: rel. error %.3g\n", e);
    std::printf("    the same data, lbo 256 / sbo 128 (sbo as the k stride): rel. error %.3g\n",
                rel_err(run_wgmma(a, bt, 128, 256, 128), ref));
    std::printf("    k-blocks 256 B apart, lbo 256 / sbo 128: rel. error %.3g\n", rel_err(run_wgmma(a, bt, 256, 256, 128), ref));
  }
  std::printf("    wgmma m64n8k32 e4m3 (A registers, B descriptor): rel. error %.3g\n", e);
  EXPECT_LT(e, tol);
}

TEST(CudaWgmmaProbe, E4m3HiLoSplitIsTheCpuRoundingAndWithin2PowMinus8) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  std::mt19937 rng(std::random_device{}());
  // Softmax weights times a power of two (exact): p in (0, 1] scaled by 2^8, so that lo stays
  // normal (>= 2^-6) for p >= 2^-4 and the split's bound holds; smaller p lose relative precision
  // to the subnormal step 2^-9 (absolute), which the PV check below includes.
  const int n = 4096;
  std::vector<float> x(n);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int i = 0; i < n; ++i) x[i] = std::ldexp(i % 7 == 0 ? u(rng) * 1e-3f : u(rng), 8);
  Dev dx(n * 4), dh(n), dl(n);
  cudaMemcpy(dx.p, x.data(), n * 4, cudaMemcpyHostToDevice);
  e4m3_split<<<(n / 2 + 127) / 128, 128>>>(dx.as<float>(), n, dh.as<uint8_t>(), dl.as<uint8_t>());
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  std::vector<uint8_t> hi(n), lo(n);
  cudaMemcpy(hi.data(), dh.p, n, cudaMemcpyDeviceToHost);
  cudaMemcpy(lo.data(), dl.p, n, cudaMemcpyDeviceToHost);
  int bad = 0;
  double worst = 0;
  for (int i = 0; i < n; ++i) {
    const uint8_t h = e4m3_round(x[i]);
    const uint8_t l = e4m3_round(double(x[i]) - e4m3_value(h));
    if (h != hi[i] || l != lo[i]) ++bad;
    if (x[i] >= 16.f) worst = std::max(worst, std::fabs(x[i] - e4m3_value(h) - e4m3_value(l)) / x[i]);
  }
  EXPECT_EQ(bad, 0) << "GPU cvt.rn.satfinite.e4m3x2 differs from the CPU model";
  // hi: half an ulp of 3 mantissa bits (2^-4 relative); lo: the same of the remainder.
  std::printf("    hi + lo worst relative error (x >= 2^4): %.3g (bound 2^-8 = %.3g)\n", worst, std::ldexp(1.0, -8));
  EXPECT_LE(worst, std::ldexp(1.0, -8));
}

TEST(CudaWgmmaProbe, E4m3PvWithHiLoWeightsIsWithinItsBound) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  std::mt19937 rng(std::random_device{}());
  // V^T: 64 dims x 32 tokens of positive e4m3 values in [0.5, 4) (no cancellation: the bound is
  // per element); P: 4 heads x 32 tokens, p in [0, 1] times 2^8, a seventh of them below 2^-3.
  std::vector<uint8_t> a(64 * 32), bt(8 * 32);
  for (auto& v : a) v = uint8_t(0x30 + rng() % 24);  // exponents 6..8: 0.5 .. 3.75
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double p[4][32];
  for (int h = 0; h < 4; ++h)
    for (int k = 0; k < 32; ++k) {
      p[h][k] = std::ldexp(k % 7 == 3 ? u(rng) * 1e-3 : u(rng), 8);
      const uint8_t hi = e4m3_round(p[h][k]);
      bt[h * 32 + k] = hi;
      bt[(h + 4) * 32 + k] = e4m3_round(p[h][k] - e4m3_value(hi));
    }
  const std::vector<float> d = run_wgmma(a, bt, 128, 128, 256);
  ASSERT_EQ(d.size(), 64u * 8u) << "launch failed";
  double worst = 0;
  int over = 0;
  for (int m = 0; m < 64; ++m)
    for (int h = 0; h < 4; ++h) {
      double ref = 0, bound = 0;
      for (int k = 0; k < 32; ++k) {
        const double v = e4m3_value(a[m * 32 + k]);
        ref += v * p[h][k];
        // hi + lo: 2^-8 relative, or half the subnormal step 2^-9 when lo underflows
        bound += v * (std::ldexp(p[h][k], -8) + std::ldexp(1.0, -10));
      }
      // The tensor cores' ~14-bit accumulation (see above): 32 positive terms, each at most ref,
      // aligned to the largest and truncated: <= 32 * 2^-14 * ref per column, two columns.
      bound += 2 * 32 * std::ldexp(ref, -14);
      const double err = std::fabs(double(d[m * 8 + h]) + double(d[m * 8 + h + 4]) - ref);
      worst = std::max(worst, err / ref);
      if (!(err <= bound)) ++over;
    }
  std::printf("    PV through hi + lo columns: worst relative error %.3g\n", worst);
  EXPECT_EQ(over, 0) << "elements past the hi + lo bound";
}

}  // namespace
