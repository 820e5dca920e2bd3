// src/kv/dtype_io.h — float32 / float16 / bfloat16 rows in and out of caller buffers (the only
// dtypes the KV cache and attention take at their boundary).
#pragma once
#include <cstdint>
#include <cstring>

#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/npy.h"

namespace tq::kv {

inline bool is_float_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

inline void check_float_dtype(DType t, const char* what) {
  TQ_CHECK_ARG(is_float_dtype(t), "{}: dtype must be float32, float16 or bfloat16, got {}", what, dtype_name(t));
}

// n consecutive elements starting at element offset `off` of base -> out (float32).
inline void load_row(const void* base, DType t, int64_t off, int n, float* out) {
  switch (t) {
    case DType::kF32: std::memcpy(out, static_cast<const float*>(base) + off, size_t(n) * 4); break;
    case DType::kF16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + off;
      for (int i = 0; i < n; ++i) out[i] = half_to_float(p[i]);
      break;
    }
    default: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + off;
      for (int i = 0; i < n; ++i) out[i] = bf16_to_float(p[i]);
    }
  }
}

// in[0..n) -> n consecutive elements at element offset `off` of base, rounded to nearest even.
inline void store_row(void* base, DType t, int64_t off, const float* in, int n) {
  switch (t) {
    case DType::kF32: std::memcpy(static_cast<float*>(base) + off, in, size_t(n) * 4); break;
    case DType::kF16: {
      uint16_t* p = static_cast<uint16_t*>(base) + off;
      for (int i = 0; i < n; ++i) p[i] = float_to_half(in[i]);
      break;
    }
    default: {
      uint16_t* p = static_cast<uint16_t*>(base) + off;
      for (int i = 0; i < n; ++i) p[i] = float_to_bf16(in[i]);
    }
  }
}

}  // namespace tq::kv
