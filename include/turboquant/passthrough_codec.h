// turboquant/passthrough_codec.h — fp32 / fp16 / bf16 values stored as they are (the baselines every
// compressed codec is compared with, through the same cache and kernels).
#pragma once
#include "turboquant/codec.h"

namespace tq {

class PassthroughCodec final : public Codec {
 public:
  PassthroughCodec(const CodecSpec& spec, int d);
  void encode(const float* x, size_t n, size_t stride, uint8_t* codes) const override;
  void decode(const uint8_t* codes, size_t n, float* y, size_t stride) const override;
};

}  // namespace tq
