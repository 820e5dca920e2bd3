// src/core/encode_kernels_scalar.cpp — plain C++ versions of encode_kernels.h, used when the build
// has no Highway (the *_hwy.cpp file is left out then). Same arithmetic as the SIMD versions:
// std::fma per term in the same order, so both give identical bytes.
#ifndef TQ_HAVE_HWY
#include <cmath>

#include "core/encode_kernels.h"

namespace tq::kernels {

void matmul_rows(const float* x, size_t rows, size_t sx, const float* mt, int d, float* y, size_t sy) {
  const int ldm = padded_cols(d);
  for (size_t r = 0; r < rows; ++r) {
    float* yr = y + r * sy;
    for (int i = 0; i < ldm; ++i) yr[i] = 0.f;
    for (int j = 0; j < d; ++j) {
      const float a = x[r * sx + j];
      const float* row = mt + size_t(j) * ldm;
      for (int i = 0; i < ldm; ++i) yr[i] = std::fma(a, row[i], yr[i]);
    }
  }
}

void quantize(const float* x, size_t n, const float* bounds, int n_bounds, uint8_t* codes) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t lo = 0, m = uint32_t(n_bounds);
    while (m > 0) {
      const uint32_t half = m / 2;
      if (x[i] > bounds[lo + half]) { lo += half + 1; m -= half + 1; } else { m = half; }
    }
    codes[i] = uint8_t(lo);
  }
}

}  // namespace tq::kernels
#endif  // TQ_HAVE_HWY
