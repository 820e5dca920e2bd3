// src/kv/attn_kernels_scalar.cpp — plain C++ versions of attn_kernels.h, used when the build has no
// Highway (the *_hwy.cpp files are left out then): correct on any CPU, not fast. Codes are read with
// layout.h's reference unpacking in natural coordinate order (kernel_order is the identity).
#ifndef TQ_HAVE_HWY
#include <cmath>
#include <cstring>
#include <numeric>

#include "kv/attn_alt_kernels.h"
#include "kv/attn_kernels.h"
#include "turboquant/half.h"
#include "turboquant/layout.h"

namespace tq::kv {
namespace {

// Calls f(t, ptr) for the n tokens of a run, in order.
template <typename F>
void for_each_token(const TokenRun& tr, F&& f) {
  int t = 0;
  for (int s = 0; s < tr.nseg; ++s)
    for (int k = 0; k < tr.count[s]; ++k, ++t) f(t, tr.base[s] + size_t(k) * tr.stride);
}

float row_value(DType dt, const uint8_t* p, int j) {
  if (dt == DType::kF32) {
    float v;
    std::memcpy(&v, p + 4 * size_t(j), 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * size_t(j), 2);
  return dt == DType::kF16 ? half_to_float(h) : bf16_to_float(h);
}

}  // namespace

std::vector<int> kernel_order(int bits, int m) {
  std::vector<int> order(static_cast<size_t>(m));
  std::iota(order.begin(), order.end(), 0);
  return order;
}
const char* kernel_target() { return "scalar (built without Highway)"; }

void dot_codes(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* q, size_t ld_q,
               int R, float* s, size_t ld_s) {
  for_each_token(tr, [&](int t, const uint8_t* p) {
    for (int r = 0; r < R; ++r) {
      float acc = 0.f;
      for (int j = 0; j < m; ++j) acc += q[r * ld_q + j] * table[unpack_code_ref(p + off, uint32_t(m), bits, uint32_t(j))];
      s[r * ld_s + t] = acc;
    }
  });
}

void acc_codes(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* w, size_t ld_w,
               int R, float* acc, size_t ld_a) {
  for_each_token(tr, [&](int t, const uint8_t* p) {
    for (int j = 0; j < m; ++j) {
      const float c = table[unpack_code_ref(p + off, uint32_t(m), bits, uint32_t(j))];
      for (int r = 0; r < R; ++r) acc[r * ld_a + j] += w[r * ld_w + t] * c;
    }
  });
}

void dot_rows(DType dt, int D, const TokenRun& tr, const float* q, size_t ld_q, int R, float* s, size_t ld_s) {
  for_each_token(tr, [&](int t, const uint8_t* p) {
    for (int r = 0; r < R; ++r) {
      float acc = 0.f;
      for (int j = 0; j < D; ++j) acc += q[r * ld_q + j] * row_value(dt, p, j);
      s[r * ld_s + t] = acc;
    }
  });
}

void acc_rows(DType dt, int D, const TokenRun& tr, const float* w, size_t ld_w, int R, float* acc, size_t ld_a) {
  for_each_token(tr, [&](int t, const uint8_t* p) {
    for (int j = 0; j < D; ++j) {
      const float x = row_value(dt, p, j);
      for (int r = 0; r < R; ++r) acc[r * ld_a + j] += w[r * ld_w + t] * x;
    }
  });
}

void load_scalars(const TokenRun& tr, size_t off, bool fp32, float* out) {
  for_each_token(tr, [&](int t, const uint8_t* p) {
    if (fp32) {
      std::memcpy(&out[t], p + off, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, p + off, 2);
      out[t] = half_to_float(h);
    }
  });
}

float softmax_block(float* s, int n, float m_old, float* m_new, float* sum) {
  float mx = -INFINITY;
  for (int t = 0; t < n; ++t) mx = std::fmax(mx, s[t]);
  const float m = std::fmax(m_old, mx);
  float acc = 0.f;
  for (int t = 0; t < n; ++t) {
    s[t] = s[t] == -INFINITY ? 0.f : std::exp(s[t] - m);
    acc += s[t];
  }
  *m_new = m;
  *sum = acc;
  return mx;
}

void scale_row(float* x, size_t n, float a) {
  for (size_t i = 0; i < n; ++i) x[i] *= a;
}
void mul_rows(const float* x, const float* c, int n, float* y) {
  for (int t = 0; t < n; ++t) y[t] = x[t] * c[t];
}
void mul_add_rows(const float* x, const float* c, int n, float* y) {
  for (int t = 0; t < n; ++t) y[t] += x[t] * c[t];
}

// The measured lookup-table alternatives (attn_alt_kernels.h) have no separate scalar form: the
// same sums as the kernels above.
bool lut_gather_supported(int, int) { return false; }
void dot_codes_lut_gather(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* q,
                          size_t ld_q, int R, float* s, size_t ld_s) {
  dot_codes(bits, m, tr, off, table, q, ld_q, R, s, ld_s);
}
void acc_codes_histogram(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* w,
                         size_t ld_w, int R, float* acc, size_t ld_a) {
  acc_codes(bits, m, tr, off, table, w, ld_w, R, acc, ld_a);
}

}  // namespace tq::kv
#endif  // TQ_HAVE_HWY
