// src/codecs/kivi_codec.cpp — KIVI (Liu et al. 2024): 2-bit asymmetric quantization with a zero
// point. Values: per token, groups of 32 channels (the Codec row "kivi2"). Keys: per channel over
// groups of G tokens (kivi_quantize_per_channel, used by `tq eval`), because key outliers live in
// fixed channels and a per-channel range absorbs them. Layout: baseline_codecs.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "codecs/fp16_scale.h"
#include "turboquant/baseline_codecs.h"
#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/pack.h"

namespace tq {

void kivi_quantize_block(const float* v, int n, size_t step, int bits, uint8_t* codes, uint16_t* scale_h,
                         uint16_t* zero_h) {
  double lo = INFINITY, hi = -INFINITY;
  for (int j = 0; j < n; ++j) {
    lo = std::fmin(lo, double(v[j * step]));
    hi = std::fmax(hi, double(v[j * step]));
  }
  const double levels = double((1 << bits) - 1);
  // Zero point rounded DOWN to fp16 so that every value sits at or above level 0; the step then
  // covers [z, max] (fp16_step keeps the top value within half a step of the top level).
  const uint16_t zh = detail::fp16_floor(lo, "kivi");
  const double z = half_to_float(zh);
  const uint16_t sh = detail::fp16_step(hi - z, levels, "kivi");
  const double s = half_to_float(sh);
  for (int j = 0; j < n; ++j) {
    const double u = s > 0 ? std::round((double(v[j * step]) - z) / s) : 0.0;
    codes[j] = uint8_t(std::clamp(u, 0.0, levels));
  }
  *scale_h = sh;
  *zero_h = zh;
}

Kivi2Codec::Kivi2Codec(const CodecSpec& spec, int d) : Codec(spec, d) {
  TQ_CHECK_ARG(spec.id == CodecId::kKivi2, "Kivi2Codec needs 'kivi2', got '{}'", spec.name());
  TQ_CHECK_ARG(d >= 1, "codec 'kivi2': dimension must be >= 1, got {}", d);
  const size_t nb = (size_t(d) + kBaselineBlock - 1) / kBaselineBlock;
  codes_bytes_ = packed_bytes(uint32_t(d), 2);
  scalar_bytes_ = 4 * nb;
}

void Kivi2Codec::encode(const float* x, size_t n, size_t stride, uint8_t* codes) const {
  detail::check_finite_input(x, n, stride, d_, "kivi2");
  // Scratch output first: a range that fp16 cannot hold throws midway, and a failed call writes nothing.
  std::vector<uint8_t> tmp(n * code_size()), u(d_);
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * stride;
    uint8_t* out = tmp.data() + i * code_size();
    uint8_t* scal = out + codes_bytes_;
    for (int b0 = 0, blk = 0; b0 < d_; b0 += kBaselineBlock, ++blk) {
      uint16_t sh = 0, zh = 0;
      kivi_quantize_block(xi + b0, std::min(kBaselineBlock, d_ - b0), 1, 2, u.data() + b0, &sh, &zh);
      detail::store_u16(scal + 4 * blk, sh);
      detail::store_u16(scal + 4 * blk + 2, zh);
    }
    pack_codes(u.data(), uint32_t(d_), 2, out);
  }
  if (!tmp.empty()) std::memcpy(codes, tmp.data(), tmp.size());
}

void Kivi2Codec::decode(const uint8_t* codes, size_t n, float* y, size_t stride) const {
  TQ_CHECK_ARG(stride >= size_t(d_), "codec 'kivi2' decode: stride {} < dimension {}", stride, d_);
  std::vector<uint8_t> u(d_);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* in = codes + i * code_size();
    const uint8_t* scal = in + codes_bytes_;
    unpack_codes(in, uint32_t(d_), 2, u.data());
    for (int j0 = 0, blk = 0; j0 < d_; j0 += kBaselineBlock, ++blk) {  // scale and zero once per block
      const float s = half_to_float(detail::load_u16(scal + 4 * blk));
      const float z = half_to_float(detail::load_u16(scal + 4 * blk + 2));
      const int e = std::min(d_, j0 + kBaselineBlock);
      for (int j = j0; j < e; ++j) y[i * stride + j] = z + s * float(u[j]);
    }
  }
}

double kivi_quantize_per_channel(const float* x, size_t n, int d, size_t stride, int group, int bits, float* y) {
  TQ_CHECK_ARG(d >= 1 && group >= 1, "kivi per-channel: dimension {} and group {} must be >= 1", d, group);
  TQ_CHECK_ARG(bits >= 1 && bits <= 8, "kivi per-channel: bits {} not in 1..8", bits);
  detail::check_finite_input(x, n, stride, d, "kivi per-channel");
  std::vector<float> out(n * size_t(d));
  std::vector<uint8_t> u(static_cast<size_t>(group));
  size_t n_groups = 0;
  for (size_t g0 = 0; g0 < n; g0 += size_t(group), ++n_groups) {
    const int m = int(std::min(size_t(group), n - g0));
    for (int c = 0; c < d; ++c) {
      uint16_t sh = 0, zh = 0;
      kivi_quantize_block(x + g0 * stride + c, m, stride, bits, u.data(), &sh, &zh);
      const float s = half_to_float(sh), z = half_to_float(zh);
      for (int t = 0; t < m; ++t) out[(g0 + t) * d + c] = z + s * float(u[t]);
    }
  }
  for (size_t t = 0; t < n; ++t) std::memcpy(y + t * stride, out.data() + t * d, sizeof(float) * d);
  return double(n) * d * bits + double(n_groups) * d * 32.0;
}

}  // namespace tq
