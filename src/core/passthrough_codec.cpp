// src/core/passthrough_codec.cpp — fp32 / fp16 / bf16: the values themselves, no scalars.
#include "turboquant/passthrough_codec.h"

#include <cmath>
#include <cstring>

#include "turboquant/error.h"
#include "turboquant/half.h"

namespace tq {

PassthroughCodec::PassthroughCodec(const CodecSpec& spec, int d) : Codec(spec, d) {
  TQ_CHECK_ARG(spec.is_passthrough(), "PassthroughCodec needs fp32/fp16/bf16, got '{}'", spec.name());
  TQ_CHECK_ARG(d >= 1, "codec '{}': dimension must be >= 1, got {}", spec.name(), d);
  codes_bytes_ = size_t(d) * (spec.id == CodecId::kFp32 ? 4 : 2);
  scalar_bytes_ = 0;
}

void PassthroughCodec::encode(const float* x, size_t n, size_t stride, uint8_t* codes) const {
  TQ_CHECK_ARG(stride >= size_t(d_), "encode: stride {} < dimension {}", stride, d_);
  for (size_t i = 0; i < n; ++i)
    for (int j = 0; j < d_; ++j)
      TQ_CHECK_ARG(std::isfinite(x[i * stride + j]), "encode: vector {} has a non-finite value at coordinate {}", i, j);
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * stride;
    uint8_t* out = codes + i * code_size();
    switch (spec_.id) {
      case CodecId::kFp32: std::memcpy(out, xi, size_t(d_) * 4); break;
      case CodecId::kFp16:
        for (int j = 0; j < d_; ++j) { const uint16_t h = float_to_half(xi[j]); std::memcpy(out + 2 * j, &h, 2); }
        break;
      default:
        for (int j = 0; j < d_; ++j) { const uint16_t h = float_to_bf16(xi[j]); std::memcpy(out + 2 * j, &h, 2); }
    }
  }
}

void PassthroughCodec::decode(const uint8_t* codes, size_t n, float* y, size_t stride) const {
  TQ_CHECK_ARG(stride >= size_t(d_), "decode: stride {} < dimension {}", stride, d_);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* in = codes + i * code_size();
    float* yi = y + i * stride;
    switch (spec_.id) {
      case CodecId::kFp32: std::memcpy(yi, in, size_t(d_) * 4); break;
      case CodecId::kFp16:
        for (int j = 0; j < d_; ++j) { uint16_t h; std::memcpy(&h, in + 2 * j, 2); yi[j] = half_to_float(h); }
        break;
      default:
        for (int j = 0; j < d_; ++j) { uint16_t h; std::memcpy(&h, in + 2 * j, 2); yi[j] = bf16_to_float(h); }
    }
  }
}

}  // namespace tq
