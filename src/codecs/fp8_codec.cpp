// src/codecs/fp8_codec.cpp — fp8 (E4M3FN) with one fp32 scale per vector: max |x| maps to 448.
#include <cfloat>
#include <cmath>
#include <cstring>

#include "codecs/fp16_scale.h"
#include "turboquant/baseline_codecs.h"
#include "turboquant/error.h"

namespace tq {

// E4M3FN: sign | 4 exponent bits (bias 7) | 3 mantissa bits. Exponent 0 = subnormals m/8 * 2^-6;
// S.1111.111 = NaN; there is no infinity, so S.1111.110 = 448 is the largest finite value.
float e4m3_to_float_ref(uint8_t code) {
  const int sign = code >> 7, e = (code >> 3) & 15, m = code & 7;
  if (e == 15 && m == 7) return std::nanf("");
  const double mag = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return float(sign ? -mag : mag);
}

namespace {
struct E4m3Table {
  float v[256];
  E4m3Table() {
    for (int c = 0; c < 256; ++c) v[c] = e4m3_to_float_ref(uint8_t(c));
  }
};
const E4m3Table& e4m3_table() {
  static const E4m3Table t;
  return t;
}
}  // namespace

float e4m3_to_float(uint8_t code) { return e4m3_table().v[code]; }

uint8_t float_to_e4m3(float xf) {
  const uint8_t sign = std::signbit(xf) ? 0x80 : 0x00;
  const double a = std::fabs(double(xf));
  if (a >= kE4m3Max) return sign | 0x7e;  // saturate (fn format: no infinity)
  // Subnormal range: steps of 2^-9 below 2^-6; m == 8 is exactly the smallest normal (code 0x08).
  if (a < std::ldexp(1.0, -6)) {
    const double m = std::nearbyint(a * 512.0);  // ties to even (default rounding mode)
    return sign | uint8_t(m);
  }
  int e = 0;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)  ->  a = (2f) * 2^(e-1)
  const int ex = e - 1;  // -6..8
  double mant = std::nearbyint((std::ldexp(a, -ex) - 1.0) * 8.0);  // exact in double, ties to even
  int be = ex + 7;
  if (mant >= 8.0) { mant = 0; ++be; }  // rounded up to the next binade
  if (be > 15 || (be == 15 && mant > 6)) return sign | 0x7e;
  return sign | uint8_t(be << 3 | int(mant));
}

Fp8Codec::Fp8Codec(const CodecSpec& spec, int d) : Codec(spec, d) {
  TQ_CHECK_ARG(spec.id == CodecId::kFp8, "Fp8Codec needs 'fp8', got '{}'", spec.name());
  TQ_CHECK_ARG(d >= 1, "codec 'fp8': dimension must be >= 1, got {}", d);
  codes_bytes_ = size_t(d);
  scalar_bytes_ = 4;
}

void Fp8Codec::encode(const float* x, size_t n, size_t stride, uint8_t* codes) const {
  detail::check_finite_input(x, n, stride, d_, "fp8");
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * stride;
    uint8_t* out = codes + i * code_size();
    double amax = 0;
    for (int j = 0; j < d_; ++j) amax = std::fmax(amax, std::fabs(double(xi[j])));
    float s = float(amax / kE4m3Max);
    if (amax > 0 && s == 0.f) s = FLT_TRUE_MIN;  // denormal-tiny input: keep a non-zero scale
    for (int j = 0; j < d_; ++j) out[j] = s > 0 ? float_to_e4m3(float(double(xi[j]) / s)) : uint8_t(0);
    std::memcpy(out + d_, &s, 4);
  }
}

void Fp8Codec::decode(const uint8_t* codes, size_t n, float* y, size_t stride) const {
  TQ_CHECK_ARG(stride >= size_t(d_), "codec 'fp8' decode: stride {} < dimension {}", stride, d_);
  const auto& t = e4m3_table();
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* in = codes + i * code_size();
    float s;
    std::memcpy(&s, in + d_, 4);
    for (int j = 0; j < d_; ++j) y[i * stride + j] = s * t.v[in[j]];
  }
}

}  // namespace tq
