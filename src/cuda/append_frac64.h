// src/cuda/append_frac64.h — tq2.5 and tq2.5p at head_dim 64: one vector per thread, the encoder
// compiled for host and device (the CPU test tests/cuda/test_append.cpp CudaAppendHost.Frac64* runs
// this very code against TqCodec::encode), kernel in append_frac64.cu.
//
// At D = 64 the fractional split is part 0 = channels [0, 16) (Hadamard, 16 dims) and part 1 =
// [16, 64) (dense Haar, 48 dims). Neither part is whole 32-coordinate code groups (16 codes are a
// tail, 48 = one group + a tail of 16) and the codes section is 18 bytes (part 1 at byte 6 for
// tq2.5): the warp kernels of append_frac / append_fprod assume 32-lane parts and word-aligned
// sections, so these two codecs get their own, simple kernel.
//
// Float operations, in the CPU's order (tq_codec.cpp):
//   n_p = sqrt(sum of x_j^2 in double, j ascending), u = x_p * float(1 / n_p) (n_p = 0: u = x_p)
//   part 0 : 3 rounds of (signs, butterflies h = 1, 2, 4, 8 as a + b / a - b, times 0.25f) (rotation.cpp)
//   part 1 : tq2.5  (batched encoder encode_rows -> matmul_rows): y_i = fp32 fma chain over j from 0
//            tq2.5p (encode_reference -> apply_dense<float>): y_i = float(sum_j double(M_ij) u_j)
//   code   = number of float boundaries below y (Codebook::quantize)
//   tq2.5p : e = y - c[code] (fp32), γ = sqrt(sum e_j^2 in double), σ_i = [sum_j double(S_ij) e_j >= 0]
// Products of two floats are exact in double, so fma = mul + add in the double sums.
#pragma once
#include <stdint.h>

#include "turboquant/half.h"
#include "turboquant/layout.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define TQ_F64_UNROLL _Pragma("unroll")
#else
#include <cmath>
#define TQ_F64_UNROLL
#endif

namespace tq::cuda::append {

constexpr int kF64D = 64, kF64M0 = 16, kF64M1 = 48;
constexpr int kF64Threads = 128;  // threads (= vectors) per block

// Layouts (layout.h make_tq_layout of the fractional split) of tq2.5 and tq2.5p at D = 64.
constexpr uint32_t kF64Dims[2] = {16, 48};
constexpr uint32_t kF64MseBits[2] = {3, 2}, kF64ProdBits[2] = {2, 1};
constexpr TqLayout frac64_layout(bool prod) {
  return make_tq_layout(2, kF64Dims, prod ? kF64ProdBits : kF64MseBits, prod, NormType::kFp16);
}
static_assert(frac64_layout(false).codes_bytes == 18 && frac64_layout(false).scalar_bytes == 4, "tq2.5 at 64");
static_assert(frac64_layout(true).codes_bytes == 18 && frac64_layout(true).scalar_bytes == 8, "tq2.5p at 64");

// The codec's constants (one copy on the device, staged into shared memory per block).
struct Frac64MseTables {                // tq2.5
  float dense[kF64M1 * kF64M1];         // part 1: M[i][j] at i * 48 + j (the fp32 entries)
  float bound0[7], bound1[3];           // Lloyd-Max boundaries (float), part 0 (3 bits), part 1 (2 bits)
  uint32_t sign0[3];                    // part 0 Hadamard signs per round, bit i set = -1
  uint32_t pad_[3];
};
struct Frac64ProdTables {               // tq2.5p
  double dense[kF64M1 * kF64M1];        // part 1: double(M[i][j]) at i * 48 + j (fp32 entries, widened)
  double sketch1[kF64M1 * kF64M1];      // part 1 sketch: double(S1[i][j]) at i * 48 + j
  double sketch0[kF64M0 * kF64M0];      // part 0 sketch
  float bound0[3], bound1[1];           // mse boundaries: part 0 (2 bits), part 1 (1 bit)
  float cent0[4], cent1[2];             // mse centroids (float)
  uint32_t sign0[3];
  uint32_t pad_[3];
};
static_assert(sizeof(Frac64MseTables) % 16 == 0 && sizeof(Frac64ProdTables) % 16 == 0, "uint4 copies");
static_assert(sizeof(Frac64ProdTables) <= 40 * 1024, "static shared memory");

// ---- float operations that nvcc must not contract (fma) or reorder ----
TQ_HD float f64_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
TQ_HD float f64_add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
TQ_HD float f64_sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
TQ_HD float f64_fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
// s + a * b in double with a, b widened floats: the product is exact, so this is the CPU's
// `s += double(a) * b` whether fused or not.
TQ_HD double f64_dacc(double s, double a, double b) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, s);
#else
  return s + a * b;
#endif
}
TQ_HD uint16_t f64_half_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  return float_to_half(f);
#endif
}

// Sets v's low nbits at bit pos of the little-endian word array w (may straddle two words).
template <int NW>
TQ_HD void f64_put_bits(uint32_t (&w)[NW], int pos, uint32_t v, int nbits) {
  const int sh = pos & 31;
  w[pos >> 5] |= v << sh;
  if (sh + nbits > 32) w[(pos >> 5) + 1] |= v >> (32 - sh);
}
// Code c (< 2^B) of coordinate e of a part of M coordinates packed at byte off of the codes section
// (layout.h: groups of 32 in planes, then the dense LSB-first tail), as pack_codes_ref.
template <int M, int B, int NW>
TQ_HD void f64_put_code(uint32_t (&w)[NW], int off, int e, uint32_t c) {
  constexpr int G = M / kGroup;
  if (e < G * kGroup) {
    int pw[3] = {0, 0, 0};
    const int np = plane_widths(B, pw);
    int word_base = 0, bit_off = 0;
    for (int p = 0; p < np; ++p) {
      int word = 0;
      const int sh = plane_pos(pw[p], e % kGroup, &word);
      f64_put_bits(w, 8 * off + 32 * B * (e / kGroup) + 32 * (word_base + word) + sh, (c >> bit_off) & ((1u << pw[p]) - 1u),
                   pw[p]);
      word_base += pw[p];
      bit_off += pw[p];
    }
  } else {
    f64_put_bits(w, 8 * off + 32 * B * G + B * (e - G * kGroup), c, B);
  }
}

// Number of the NB ascending boundaries below u (Codebook::quantize: strict >, NaN: 0).
template <int NB>
TQ_HD uint32_t f64_code(float u, const float (&b)[NB]) {
  uint32_t c = 0;
  TQ_F64_UNROLL
  for (int k = 0; k < NB; ++k) c += u > b[k] ? 1u : 0u;
  return c;
}

// Part norms (double, j ascending) and the scales float(1 / n) (1 for a zero part).
TQ_HD void f64_norms(const float (&x)[kF64D], double& n0, double& n1, float& inv0, float& inv1) {
  double s0 = 0.0, s1 = 0.0;
  TQ_F64_UNROLL
  for (int j = 0; j < kF64M0; ++j) s0 = f64_dacc(s0, x[j], x[j]);
  TQ_F64_UNROLL
  for (int j = kF64M0; j < kF64D; ++j) s1 = f64_dacc(s1, x[j], x[j]);
  n0 = sqrt(s0);
  n1 = sqrt(s1);
  inv0 = n0 > 0.0 ? float(1.0 / n0) : 1.0f;
  inv1 = n1 > 0.0 ? float(1.0 / n1) : 1.0f;
}

// Part 0: y = H D3 H D2 H D1 (x_0 · inv), rotation.cpp's float operations.
TQ_HD void f64_hadamard16(const float (&x)[kF64D], float inv, const uint32_t (&sign)[3], float (&y)[kF64M0]) {
  TQ_F64_UNROLL
  for (int j = 0; j < kF64M0; ++j) y[j] = f64_mul(x[j], inv);
  TQ_F64_UNROLL
  for (int r = 0; r < 3; ++r) {
    TQ_F64_UNROLL
    for (int j = 0; j < kF64M0; ++j)
      if (sign[r] >> j & 1u) y[j] = -y[j];  // * -1.0f: exact
    TQ_F64_UNROLL
    for (int st = 0; st < 4; ++st) {  // h = 2^st; pairs (j, j + h) in fwht_impl's order
      TQ_F64_UNROLL
      for (int k = 0; k < kF64M0 / 2; ++k) {
        const int h = 1 << st, j = (k >> st << (st + 1)) | (k & (h - 1));
        const float a = y[j], b = y[j + h];
        y[j] = f64_add(a, b);
        y[j + h] = f64_sub(a, b);
      }
    }
    TQ_F64_UNROLL
    for (int j = 0; j < kF64M0; ++j) y[j] = f64_mul(y[j], 0.25f);  // 1 / sqrt(16), as fwht_impl
  }
}

// tq2.5 at D = 64: the codes section (18 bytes, in words 0..4 little-endian; bytes 18, 19 zero)
// and the scalars (fp16 n_0, n_1). Returns false when a part norm is beyond fp16 (the CPU throws).
TQ_HD bool frac64_encode_mse(const float (&x)[kF64D], const Frac64MseTables& T, uint32_t (&w)[5], uint16_t (&scal)[2]) {
  constexpr TqLayout L = frac64_layout(false);
  constexpr int OFF1 = int(L.part[1].mse_offset);
  double n0, n1;
  float inv0, inv1;
  f64_norms(x, n0, n1, inv0, inv1);
  TQ_F64_UNROLL
  for (int i = 0; i < 5; ++i) w[i] = 0u;
  {
    float y[kF64M0];
    f64_hadamard16(x, inv0, T.sign0, y);
    TQ_F64_UNROLL
    for (int j = 0; j < kF64M0; ++j) f64_put_code<kF64M0, 3>(w, 0, j, f64_code(y[j], T.bound0));
  }
  float u[kF64M1];
  TQ_F64_UNROLL
  for (int j = 0; j < kF64M1; ++j) u[j] = f64_mul(x[kF64M0 + j], inv1);
  TQ_F64_UNROLL
  for (int i = 0; i < kF64M1; ++i) {
    const float* m = T.dense + i * kF64M1;
    float acc = 0.0f;
    TQ_F64_UNROLL
    for (int j = 0; j < kF64M1; ++j) acc = f64_fma(u[j], m[j], acc);
    f64_put_code<kF64M1, 2>(w, OFF1, i, f64_code(acc, T.bound1));
  }
  const float f0 = float(n0), f1 = float(n1);
  scal[0] = f64_half_bits(f0);
  scal[1] = f64_half_bits(f1);
  return f0 < 65504.f && f1 < 65504.f;
}

// A part's QJL signs: bit i (at word offset off) = sign of row i of the part's M x M sketch (row
// major, double) times its residual e, accumulated in double in the CPU encoder's order.
template <int M, class E>
TQ_HD void f64_qjl_signs(const double* sketch, const E (&e)[M], uint32_t (&w)[5], int off) {
  TQ_F64_UNROLL
  for (int i = 0; i < M; ++i) {
    const double* s = sketch + i * M;
    double acc = 0.0;
    TQ_F64_UNROLL
    for (int j = 0; j < M; ++j) acc = f64_dacc(acc, s[j], e[j]);
    f64_put_code<M, 1>(w, off, i, acc >= 0.0 ? 1u : 0u);
  }
}

// tq2.5p at D = 64: codes section (18 bytes: mse codes of parts 0, 1, then QJL signs of parts 0, 1)
// and scalars (fp16 n_0, γ_0, n_1, γ_1).
TQ_HD bool frac64_encode_prod(const float (&x)[kF64D], const Frac64ProdTables& T, uint32_t (&w)[5], uint16_t (&scal)[4]) {
  constexpr TqLayout L = frac64_layout(true);
  constexpr int MSE1 = int(L.part[1].mse_offset), Q0 = int(L.part[0].qjl_offset), Q1 = int(L.part[1].qjl_offset);
  double n0, n1;
  float inv0, inv1;
  f64_norms(x, n0, n1, inv0, inv1);
  TQ_F64_UNROLL
  for (int i = 0; i < 5; ++i) w[i] = 0u;
  double g0 = 0.0, g1 = 0.0;
  {  // part 0: Hadamard, 2-bit codes, residual, its 16 signs
    float y[kF64M0];
    f64_hadamard16(x, inv0, T.sign0, y);
    double e[kF64M0];
    TQ_F64_UNROLL
    for (int j = 0; j < kF64M0; ++j) {
      const uint32_t c = f64_code(y[j], T.bound0);
      f64_put_code<kF64M0, 2>(w, 0, j, c);
      const float r = f64_sub(y[j], T.cent0[c]);
      e[j] = r;
      g0 = f64_dacc(g0, e[j], e[j]);
    }
    f64_qjl_signs<kF64M0>(T.sketch0, e, w, Q0);
  }
  {  // part 1: dense in double, 1-bit codes, residual, its 48 signs
    double u[kF64M1];
    TQ_F64_UNROLL
    for (int j = 0; j < kF64M1; ++j) u[j] = f64_mul(x[kF64M0 + j], inv1);
    float e[kF64M1];
    TQ_F64_UNROLL
    for (int i = 0; i < kF64M1; ++i) {
      const double* m = T.dense + i * kF64M1;
      double acc = 0.0;
      TQ_F64_UNROLL
      for (int j = 0; j < kF64M1; ++j) acc = f64_dacc(acc, m[j], u[j]);
      const float y = float(acc);
      const uint32_t c = f64_code(y, T.bound1);
      f64_put_code<kF64M1, 1>(w, MSE1, i, c);
      e[i] = f64_sub(y, T.cent1[c]);
      g1 = f64_dacc(g1, e[i], e[i]);
    }
    f64_qjl_signs<kF64M1>(T.sketch1, e, w, Q1);
  }
  const float f0 = float(n0), f1 = float(n1);
  scal[0] = f64_half_bits(f0);
  scal[1] = f64_half_bits(n0 > 0.0 ? float(sqrt(g0)) : 0.0f);
  scal[2] = f64_half_bits(f1);
  scal[3] = f64_half_bits(n1 > 0.0 ? float(sqrt(g1)) : 0.0f);
  return f0 < 65504.f && f1 < 65504.f;
}

// Kernel parameters (append_frac64.cu).
struct Frac64Params {
  const void* x;                 // [n_tokens, Hkv, 64] in_dtype
  const int32_t* slot_mapping;   // [n_tokens] page * page_tokens + offset, < 0 = skip
  uint8_t* pool;                 // pages (KvPageLayout)
  int* error_flag;               // bit 0: slot beyond the pool, bit 1: a part norm beyond fp16
  const void* tables;            // Frac64MseTables / Frac64ProdTables on the device
  KvPageLayout layout;
  int n_tokens, Hkv, num_pages, in_dtype;  // 0 f32, 1 f16, 2 bf16
};
// Kernel entry for tq2.5 (prod = false) or tq2.5p (prod = true) at head_dim 64.
const void* append_frac64_kernel_for(bool prod);

}  // namespace tq::cuda::append

#if !defined(__CUDACC__)
// Host: the tables from the codec (plan and CPU tests). The codec must be tq2.5 / tq2.5p at D = 64
// without calibration (checked by the caller: frac64_check).
#include <cstring>
#include <vector>

#include "turboquant/tq_codec.h"

namespace tq::cuda::append {

// Empty if the codec's layout, parts and rotations are this kernel's; else what differs.
inline const char* frac64_check(const TqCodec& t, bool prod) {
  const TqLayout& L = *t.tq_layout();
  const TqLayout K = frac64_layout(prod);
  bool same = L.n_parts == 2 && L.prod == K.prod && L.codes_bytes == K.codes_bytes && L.scalar_bytes == K.scalar_bytes &&
              L.norm_type == NormType::kFp16 && t.parts().size() == 2;
  for (int p = 0; p < 2 && same; ++p) {
    const TqPartLayout &a = L.part[p], &b = K.part[p];
    same = a.dim == b.dim && a.first == b.first && a.mse_bits == b.mse_bits && a.mse_offset == b.mse_offset &&
           a.qjl_offset == b.qjl_offset && a.norm_offset == b.norm_offset && a.gamma_offset == b.gamma_offset;
    for (uint32_t j = 0; j < a.dim && same; ++j) same = t.parts()[p].channels[j] == int(a.first + j);
  }
  if (!same) return "layout or channel split is not the kernel's";
  if (t.parts()[0].rot->kind() != RotationKind::kHadamard || t.parts()[1].rot->kind() != RotationKind::kDense)
    return "rotations are not (Hadamard, dense)";
  if (prod && (t.parts()[0].sketch.size() != size_t(kF64M0 * kF64M0) || t.parts()[1].sketch.size() != size_t(kF64M1 * kF64M1)))
    return "sketches are not 16 x 16, 48 x 48";
  return "";
}

template <class Tab>
void frac64_common(const TqCodec& t, Tab& T) {
  std::memset(&T, 0, sizeof T);
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < kF64M0; ++i)
      if (t.parts()[0].rot->signs(r)[size_t(i)] < 0) T.sign0[r] |= 1u << i;
  const auto& b0 = t.parts()[0].cb->boundaries();
  const auto& b1 = t.parts()[1].cb->boundaries();
  for (size_t i = 0; i < b0.size() && i < sizeof T.bound0 / 4; ++i) T.bound0[i] = float(b0[i]);
  for (size_t i = 0; i < b1.size() && i < sizeof T.bound1 / 4; ++i) T.bound1[i] = float(b1[i]);
}

inline void frac64_tables(const TqCodec& t, Frac64MseTables& T) {
  frac64_common(t, T);
  const std::vector<float>& M = t.parts()[1].rot->matrix();  // row-major fp32, what the batched encoder reads
  for (size_t i = 0; i < size_t(kF64M1 * kF64M1); ++i) T.dense[i] = M[i];
}

inline void frac64_tables(const TqCodec& t, Frac64ProdTables& T) {
  frac64_common(t, T);
  const std::vector<float>& M = t.parts()[1].rot->matrix();  // apply_dense<float> reads double(these)
  for (size_t i = 0; i < size_t(kF64M1 * kF64M1); ++i) T.dense[i] = double(M[i]);
  for (size_t i = 0; i < size_t(kF64M1 * kF64M1); ++i) T.sketch1[i] = double(t.parts()[1].sketch[i]);
  for (size_t i = 0; i < size_t(kF64M0 * kF64M0); ++i) T.sketch0[i] = double(t.parts()[0].sketch[i]);
  const auto& c0 = t.parts()[0].cb->centroids_f32();
  const auto& c1 = t.parts()[1].cb->centroids_f32();
  for (size_t i = 0; i < c0.size() && i < 4; ++i) T.cent0[i] = c0[i];
  for (size_t i = 0; i < c1.size() && i < 2; ++i) T.cent1[i] = c1[i];
}

}  // namespace tq::cuda::append
#endif  // !__CUDACC__
