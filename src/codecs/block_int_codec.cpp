// src/codecs/block_int_codec.cpp — q8 / q4 (ggml q8_0 / q4_0 arithmetic: symmetric integers per
// block of 32 with an fp16 scale) and their rotated variants q8r / q4r. Layout: baseline_codecs.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "codecs/fp16_scale.h"
#include "turboquant/baseline_codecs.h"
#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/pack.h"
#include "turboquant/rotation.h"

namespace tq {

BlockIntCodec::BlockIntCodec(const CodecSpec& spec, int d) : Codec(spec, d) {
  const CodecId id = spec.id;
  TQ_CHECK_ARG(id == CodecId::kQ8 || id == CodecId::kQ4 || id == CodecId::kQ8r || id == CodecId::kQ4r,
               "BlockIntCodec needs q8, q4, q8r or q4r, got '{}'", spec.name());
  TQ_CHECK_ARG(d >= 1, "codec '{}': dimension must be >= 1, got {}", spec.name(), d);
  bits_ = (id == CodecId::kQ8 || id == CodecId::kQ8r) ? 8 : 4;
  if (id == CodecId::kQ8r || id == CodecId::kQ4r) rot_ = Rotation::create(RotationKind::kAuto, d, spec.seed);
  const size_t nb = (size_t(d) + kBaselineBlock - 1) / kBaselineBlock;
  codes_bytes_ = bits_ == 8 ? size_t(d) : size_t(packed_bytes(uint32_t(d), 4));
  scalar_bytes_ = 2 * nb;
}

void BlockIntCodec::encode_one(const float* x, uint8_t* out) const {
  const std::string name = spec_.name();
  uint8_t* scal = out + codes_bytes_;
  std::vector<uint8_t> nib(bits_ == 4 ? d_ : 0);
  for (int b0 = 0, blk = 0; b0 < d_; b0 += kBaselineBlock, ++blk) {
    const int n = std::min(kBaselineBlock, d_ - b0);
    if (bits_ == 8) {
      double amax = 0;
      for (int j = 0; j < n; ++j) amax = std::fmax(amax, std::fabs(double(x[b0 + j])));
      const uint16_t h = detail::fp16_step(amax, 127.0, name.c_str());
      const double s = half_to_float(h);
      for (int j = 0; j < n; ++j) {
        const double q = s > 0 ? std::round(double(x[b0 + j]) / s) : 0.0;
        out[b0 + j] = uint8_t(int8_t(std::fmax(-127.0, std::fmin(127.0, q))));
      }
      detail::store_u16(scal + 2 * blk, h);
    } else {
      // ggml q4_0: the value of largest magnitude m maps to -8, i.e. scale = m / -8 (signed).
      double m = 0;
      for (int j = 0; j < n; ++j)
        if (std::fabs(double(x[b0 + j])) > std::fabs(m)) m = x[b0 + j];
      uint16_t h = detail::fp16_step(std::fabs(m), 8.0, name.c_str());
      if (m > 0) h |= 0x8000;  // scale = -|m|/8 for a positive extreme, +|m|/8 for a negative one
      const double s = half_to_float(h);
      for (int j = 0; j < n; ++j) {
        const double q = s != 0 ? std::round(double(x[b0 + j]) / s) : 0.0;
        nib[b0 + j] = uint8_t(int(std::fmax(-8.0, std::fmin(7.0, q))) + 8);
      }
      detail::store_u16(scal + 2 * blk, h);
    }
  }
  if (bits_ == 4) pack_codes(nib.data(), uint32_t(d_), 4, out);
}

void BlockIntCodec::encode(const float* x, size_t n, size_t stride, uint8_t* codes) const {
  const std::string name = spec_.name();
  detail::check_finite_input(x, n, stride, d_, name.c_str());
  // Encode into a scratch buffer and copy at the end: a scale that fp16 cannot hold throws midway,
  // and a failed call must write nothing.
  std::vector<float> r(d_);
  std::vector<uint8_t> tmp(n * code_size());
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * stride;
    if (rot_) {
      rot_->forward(xi, r.data());
      xi = r.data();
    }
    encode_one(xi, tmp.data() + i * code_size());
  }
  if (!tmp.empty()) std::memcpy(codes, tmp.data(), tmp.size());
}

void BlockIntCodec::decode_one(const uint8_t* in, float* yi) const {
  const uint8_t* scal = in + codes_bytes_;
  for (int j0 = 0, blk = 0; j0 < d_; j0 += kBaselineBlock, ++blk) {
    const float s = half_to_float(detail::load_u16(scal + 2 * blk));
    const int e = std::min(d_, j0 + kBaselineBlock);
    if (bits_ == 8) {
      for (int j = j0; j < e; ++j) yi[j] = s * float(int8_t(in[j]));
    } else {
      int j = j0;  // j0 is even: byte j/2 holds codes j (low nibble) and j+1 (high nibble)
      for (; j + 1 < e; j += 2) {
        const int b = in[j >> 1];
        yi[j] = s * float((b & 15) - 8);
        yi[j + 1] = s * float((b >> 4) - 8);
      }
      if (j < e) yi[j] = s * float((in[j >> 1] & 15) - 8);
    }
  }
}

void BlockIntCodec::decode(const uint8_t* codes, size_t n, float* y, size_t stride) const {
  TQ_CHECK_ARG(stride >= size_t(d_), "codec '{}' decode: stride {} < dimension {}", spec_.name(), stride, d_);
  std::vector<float> r(rot_ ? d_ : 0);
  for (size_t i = 0; i < n; ++i) {
    decode_one(codes + i * code_size(), rot_ ? r.data() : y + i * stride);
    if (rot_) rot_->inverse(r.data(), y + i * stride);
  }
}

void BlockIntCodec::decode_rotated(const uint8_t* codes, size_t n, float* y, size_t stride) const {
  TQ_CHECK_ARG(stride >= size_t(d_), "codec '{}' decode: stride {} < dimension {}", spec_.name(), stride, d_);
  for (size_t i = 0; i < n; ++i) decode_one(codes + i * code_size(), y + i * stride);
}

void BlockIntCodec::decode_reference(const uint8_t* codes, size_t n, float* y, size_t stride) const {
  TQ_CHECK_ARG(stride >= size_t(d_), "codec '{}' decode: stride {} < dimension {}", spec_.name(), stride, d_);
  std::vector<uint8_t> nib(bits_ == 4 ? d_ : 0);
  std::vector<float> r(d_);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* in = codes + i * code_size();
    const uint8_t* scal = in + codes_bytes_;
    float* yi = rot_ ? r.data() : y + i * stride;
    if (bits_ == 4) unpack_codes(in, uint32_t(d_), 4, nib.data());
    for (int j = 0; j < d_; ++j) {
      const float s = half_to_float(detail::load_u16(scal + 2 * (j / kBaselineBlock)));
      const int q = bits_ == 8 ? int(int8_t(in[j])) : int(nib[j]) - 8;
      yi[j] = s * float(q);
    }
    if (rot_) rot_->inverse(r.data(), y + i * stride);
  }
}

}  // namespace tq
