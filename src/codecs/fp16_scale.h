// src/codecs/fp16_scale.h — fp16 scales and zero points for the block codecs (q4/q8/kivi2), and the
// input validation they share. Internal to src/codecs.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "turboquant/error.h"
#include "turboquant/half.h"

namespace tq::detail {

inline constexpr double kHalfMax = 65504.0;

// fp16 magnitude for the quantizer step of a block whose largest |value| is `amax`, with `qmax`
// levels on that side: the fp16 rounding of amax/qmax, bumped up one ulp at a time until
// amax/step <= qmax + 0.5, so that the extreme value is never clamped by more than half a step
// (rounding down — or a subnormal step — would otherwise clamp it). amax = 0 gives 0.
inline uint16_t fp16_step(double amax, double qmax, const char* codec) {
  if (!(amax > 0)) return 0;
  const double s = amax / qmax;
  TQ_CHECK_ARG(s <= kHalfMax, "codec '{}': block extreme {:.4g} needs a scale {:.4g} beyond fp16 (max 65504)",
               codec, amax, s);
  uint16_t h = float_to_half(float(s));
  if (h == 0) h = 1;  // below the smallest subnormal: use it (coarser step, never zero)
  while (double(half_to_float(h)) * (qmax + 0.5) < amax) {
    ++h;  // positive halves are ordered like their bit patterns
    TQ_CHECK_ARG(h < 0x7c00, "codec '{}': scale for block extreme {:.4g} overflows fp16", codec, amax);
  }
  return h;
}

// Largest fp16 value <= v (round toward -inf), for zero points: keeps every value of the block at
// or above level 0. Throws when v is below -65504.
inline uint16_t fp16_floor(double v, const char* codec) {
  TQ_CHECK_ARG(v >= -kHalfMax && v <= kHalfMax, "codec '{}': value {:.4g} beyond the fp16 range of the zero point",
               codec, v);
  uint16_t h = float_to_half(float(v));
  if (double(half_to_float(h)) <= v) return h;
  // One step toward -inf: positive -> smaller magnitude; +0 -> -min subnormal; negative -> larger magnitude.
  if (h == 0x0000) return 0x8001;
  if (h & 0x8000) return uint16_t(h + 1);
  return uint16_t(h - 1);
}

inline void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Validates a whole encode call first, so that a failed call writes nothing.
inline void check_finite_input(const float* x, size_t n, size_t stride, int d, const char* codec) {
  TQ_CHECK_ARG(stride >= size_t(d), "codec '{}' encode: stride {} < dimension {}", codec, stride, d);
  for (size_t i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j)
      TQ_CHECK_ARG(std::isfinite(x[i * stride + j]), "codec '{}' encode: vector {} has a non-finite value at coordinate {}",
                   codec, i, j);
}

}  // namespace tq::detail
