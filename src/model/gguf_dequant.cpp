// src/model/gguf_dequant.cpp — ggml tensor types to float (block layouts as in ggml's
// ggml-common.h: block_q8_0 = {fp16 d; int8 qs[32]}, block_q4_0 = {fp16 d; uint8 qs[16]} with
// element j in the low nibble of qs[j] and element j+16 in its high nibble, value (q - 8) * d).
#include <cstring>

#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/model/gguf.h"

namespace tq::gguf {
namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

// src: the exact bytes of n elements (n a multiple of the block size); dst: n floats.
void dequantize(GgmlType type, const uint8_t* src, float* dst, int64_t n) {
  const TypeTraits* tr = type_traits(uint32_t(type));
  TQ_CHECK_ARG(tr, "gguf: unknown tensor type {}", uint32_t(type));
  TQ_CHECK_ARG(n >= 0 && n % tr->block == 0, "gguf: {} elements of {} (block size {})", n, tr->name, tr->block);
  if (n == 0) return;  // empty tensors: dst may be null
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, size_t(n) * 4);  // src may be unaligned (parse() of any buffer)
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(load_u16(src + 2 * i));
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_u16(src + 2 * i));
      return;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* blk = src + 34 * b;
        const float d = half_to_float(load_u16(blk));
        for (int j = 0; j < 32; ++j) dst[32 * b + j] = float(int8_t(blk[2 + j])) * d;
      }
      return;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* blk = src + 18 * b;
        const float d = half_to_float(load_u16(blk));
        for (int j = 0; j < 16; ++j) {
          dst[32 * b + j] = float(int(blk[2 + j] & 0x0f) - 8) * d;
          dst[32 * b + j + 16] = float(int(blk[2 + j] >> 4) - 8) * d;
        }
      }
      return;
    default:
      TQ_FAIL(kUnsupported, "gguf: tensors of type {} cannot be dequantized by this reader (F32, F16, BF16, Q8_0, "
              "Q4_0 can)", tr->name);
  }
}

}  // namespace tq::gguf
