// src/kv/attn_kernels_hwy.cpp — SIMD primitives of the fused CPU attention (attn_kernels.h),
// compiled once per Highway target and dispatched at run time.
//
// Codes at 1..4 bits on 16-lane targets (AVX-512): a 32-code group becomes two index vectors with
// one broadcast and one variable shift each — a 64-bit lane shifted right by s holds, in its low
// 32 bits, the code at bit s and, in its high 32 bits, the code at bit s + 32 — and one permute
// (vpermps) of a 16-entry table turns indices into centroids (the permute reads only the low 4
// bits, so the bits above each code are left in place and the table repeats to ignore them).
// 3-bit codes take the high bit from the 1-bit plane the same way, merged by one bit-select.
// Per 16 coordinates: ~2.5 integer/permute ops + one FMA per query row, instead of unpack-to-bytes
// + convert + FMA. Other widths, other bit counts and the d % 32 tail: scalar unpacking.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/attn_kernels_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kv/attn_kernels.h"
#include "turboquant/half.h"
#include "turboquant/layout.h"
#include "turboquant/pack.h"

HWY_BEFORE_NAMESPACE();
namespace tq::kv::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// ---- scalar helpers (every target) -------------------------------------------------------------

// Code i (>= 32*groups) of the dense tail bitstream of a packed vector.
inline uint32_t tail_code(const uint8_t* packed, int groups, int bits, int i) {
  const uint8_t* tail = packed + 4 * bits * groups;
  const uint32_t bitpos = uint32_t(bits) * uint32_t(i - 32 * groups);
  uint32_t v = 0;
  for (int k = 0; k < bits; ++k) v |= uint32_t(tail[(bitpos + k) >> 3] >> ((bitpos + k) & 7) & 1u) << k;
  return v;
}

// Natural-order float decode of one token's codes (the generic path).
inline void decode_codes(int bits, int m, const uint8_t* codes, const float* table, uint8_t* idx, float* x) {
  unpack_codes(codes, uint32_t(m), bits, idx);
  for (int j = 0; j < m; ++j) x[j] = table[idx[j]];
}

// ---- float rows: f32 / f16 / bf16 -------------------------------------------------------------

template <typename T>
HWY_INLINE hn::Vec<DF> LoadRow(DF df, const T* p) {
  if constexpr (sizeof(T) == 4) {
    return hn::LoadU(df, reinterpret_cast<const float*>(p));
  } else {
    const hn::Rebind<T, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, p));
  }
}
template <typename T>
inline float ScalarOf(const T* p) {
  if constexpr (sizeof(T) == 4) {
    return *reinterpret_cast<const float*>(p);
  } else {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return std::is_same_v<T, hwy::float16_t> ? half_to_float(h) : bf16_to_float(h);
  }
}

// s[r][t] = q_r · x_t for RT rows at once (one pass over each token's values).
template <typename T, int RT>
void DotRowsT(int D, const uint8_t* rows, size_t stride, int n, const float* q, size_t ld_q, float* s, size_t ld_s) {
  const DF df;
  const int N = int(hn::Lanes(df)), full = D / N * N;
  for (int t = 0; t < n; ++t) {
    const T* x = reinterpret_cast<const T*>(rows + size_t(t) * stride);
    hn::Vec<DF> acc[RT];
    for (int r = 0; r < RT; ++r) acc[r] = hn::Zero(df);
    for (int j = 0; j < full; j += N) {
      const auto xv = LoadRow(df, x + j);
      for (int r = 0; r < RT; ++r) acc[r] = hn::MulAdd(xv, hn::LoadU(df, q + r * ld_q + j), acc[r]);
    }
    for (int r = 0; r < RT; ++r) {
      float v = hn::GetLane(hn::SumOfLanes(df, acc[r]));
      for (int j = full; j < D; ++j) v += q[r * ld_q + j] * ScalarOf(x + j);
      s[r * ld_s + t] = v;
    }
  }
}

// acc[r][j] += Σ_t w[r][t] x_t[j]: coordinates in chunks of K vectors so that RT*K accumulators
// stay in registers while the chunk's tokens stream by.
template <typename T, int RT>
void AccRowsT(int D, const uint8_t* rows, size_t stride, int n, const float* w, size_t ld_w, float* acc, size_t ld_a) {
  const DF df;
  constexpr int K = 16 / RT;
  const int N = int(hn::Lanes(df)), full = D / N * N;
  for (int j0 = 0; j0 < full; j0 += K * N) {
    const int kc = std::min(K, (full - j0) / N);
    hn::Vec<DF> a[RT][K];
    for (int r = 0; r < RT; ++r)
      for (int k = 0; k < K; ++k) a[r][k] = k < kc ? hn::LoadU(df, acc + r * ld_a + j0 + k * N) : hn::Zero(df);
    for (int t = 0; t < n; ++t) {
      const T* x = reinterpret_cast<const T*>(rows + size_t(t) * stride) + j0;
      hn::Vec<DF> wv[RT];
      for (int r = 0; r < RT; ++r) wv[r] = hn::Set(df, w[r * ld_w + t]);
      for (int k = 0; k < K; ++k) {
        if (k >= kc) break;
        const auto xv = LoadRow(df, x + k * N);
        for (int r = 0; r < RT; ++r) a[r][k] = hn::MulAdd(xv, wv[r], a[r][k]);
      }
    }
    for (int r = 0; r < RT; ++r)
      for (int k = 0; k < kc; ++k) hn::StoreU(a[r][k], df, acc + r * ld_a + j0 + k * N);
  }
  for (int j = full; j < D; ++j)
    for (int t = 0; t < n; ++t) {
      const float xv = ScalarOf(reinterpret_cast<const T*>(rows + size_t(t) * stride) + j);
      for (int r = 0; r < RT; ++r) acc[r * ld_a + j] += w[r * ld_w + t] * xv;
    }
}

// Row tiles of 4, 2, 1: each tile reads the tokens once.
template <typename T>
void DotRowsAll(int D, const uint8_t* rows, size_t stride, int n, const float* q, size_t ld_q, int R, float* s,
                size_t ld_s) {
  int r = 0;
  for (; R - r >= 4; r += 4) DotRowsT<T, 4>(D, rows, stride, n, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
  for (; R - r >= 2; r += 2) DotRowsT<T, 2>(D, rows, stride, n, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
  for (; r < R; ++r) DotRowsT<T, 1>(D, rows, stride, n, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
}
template <typename T>
void AccRowsAll(int D, const uint8_t* rows, size_t stride, int n, const float* w, size_t ld_w, int R, float* a,
                size_t ld_a) {
  int r = 0;
  for (; R - r >= 4; r += 4) AccRowsT<T, 4>(D, rows, stride, n, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
  for (; R - r >= 2; r += 2) AccRowsT<T, 2>(D, rows, stride, n, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
  for (; r < R; ++r) AccRowsT<T, 1>(D, rows, stride, n, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
}

void DotRowsImpl(DType dt, int D, const void* rows, size_t stride, int n, const float* q, size_t ld_q, int R, float* s,
                 size_t ld_s) {
  const auto* p = static_cast<const uint8_t*>(rows);
  if (dt == DType::kF32) DotRowsAll<float>(D, p, stride, n, q, ld_q, R, s, ld_s);
  else if (dt == DType::kF16) DotRowsAll<hwy::float16_t>(D, p, stride, n, q, ld_q, R, s, ld_s);
  else DotRowsAll<hwy::bfloat16_t>(D, p, stride, n, q, ld_q, R, s, ld_s);
}
void AccRowsImpl(DType dt, int D, const void* rows, size_t stride, int n, const float* w, size_t ld_w, int R,
                 float* acc, size_t ld_a) {
  const auto* p = static_cast<const uint8_t*>(rows);
  if (dt == DType::kF32) AccRowsAll<float>(D, p, stride, n, w, ld_w, R, acc, ld_a);
  else if (dt == DType::kF16) AccRowsAll<hwy::float16_t>(D, p, stride, n, w, ld_w, R, acc, ld_a);
  else AccRowsAll<hwy::bfloat16_t>(D, p, stride, n, w, ld_w, R, acc, ld_a);
}

// ---- packed codes ------------------------------------------------------------------------------

#undef TQ_KV_LANES16
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define TQ_KV_LANES16 1
#else
#define TQ_KV_LANES16 0
#endif

// Kernel order of one 32-code group for the 16-lane unpacking (positions 0..15: first index
// vector, 16..31: second), derived from the shifts below.
inline int lanes16_code(int bits, int pos) {
  const int v = pos >> 4, lane = pos & 15, j = lane >> 1, hi = lane & 1;
  if (bits == 1) {  // lane <- bit p = 16v + lane of the 1-bit plane: p = 4m + 2k + h
    const int p = 16 * v + lane;
    return 16 * ((p >> 1) & 1) + 2 * (p >> 2) + (p & 1);
  }
  if (bits == 4) return 16 * v + j + 8 * hi;  // 64-bit lane j of half v shifted by 4j
  return 8 * v + j + 16 * hi;                 // 2 and 3 bits: 64-bit lane j shifted by 2(8v + j)
}

bool FastBits(int bits) { return TQ_KV_LANES16 && bits >= 1 && bits <= 4; }

std::vector<int> KernelOrderImpl(int bits, int m) {
  std::vector<int> order(static_cast<size_t>(m));
  const int groups = m / 32;
  for (int j = 0; j < m; ++j)
    order[size_t(j)] = FastBits(bits) && j < 32 * groups ? 32 * (j / 32) + lanes16_code(bits, j % 32) : j;
  return order;
}

const char* TargetImpl() { return hwy::TargetName(HWY_TARGET); }

#if TQ_KV_LANES16
using D16 = hn::Full512<float>;
using DU32 = hn::Full512<uint32_t>;
using DU64 = hn::Full512<uint64_t>;
using VF = hn::Vec<D16>;
using VU = hn::Vec<DU32>;

struct Shifts {
  hn::Vec<DU64> lo2a, lo2b, hi3a, hi3b, nib;
  VU bit1a, bit1b, mask3;
  Shifts() {
    const DU64 d64;
    const DU32 d32;
    alignas(64) uint64_t a[8], b[8], c[8], e[8], f[8];
    for (int j = 0; j < 8; ++j) {
      a[j] = uint64_t(2 * j);
      b[j] = uint64_t(16 + 2 * j);
      // 3-bit: the high bit of code j (k=0) sits at p = 4(j>>1) + (j&1) of the 1-bit plane; the
      // broadcast value holds the plane at bits 2 and 32, so a shift by p brings code j's bit and
      // code j+16's bit (at p+2, read from the copy at 32) both to bit 2 of their 32-bit halves
      // (p <= 29, so the highest bit read is 63).
      c[j] = uint64_t(4 * (j >> 1) + (j & 1));
      e[j] = uint64_t(16 + 4 * (j >> 1) + (j & 1));
      f[j] = uint64_t(4 * j);
    }
    lo2a = hn::Load(d64, a);
    lo2b = hn::Load(d64, b);
    hi3a = hn::Load(d64, c);
    hi3b = hn::Load(d64, e);
    nib = hn::Load(d64, f);
    alignas(64) uint32_t s0[16], s1[16];
    for (int l = 0; l < 16; ++l) {
      s0[l] = uint32_t(l);
      s1[l] = uint32_t(16 + l);
    }
    bit1a = hn::Load(d32, s0);
    bit1b = hn::Load(d32, s1);
    mask3 = hn::Set(d32, 3u);
  }
};

// The 16-entry table each index vector is looked up in: bits above the code are ignored.
inline void Table16(int bits, const float* c, float* t) {
  for (int i = 0; i < 16; ++i) {
    if (bits == 1) t[i] = c[i & 1];
    else if (bits == 2) t[i] = c[i & 3];
    else if (bits == 3) t[i] = c[i & 7];
        else t[i] = c[i];
  }
}

template <int B>
HWY_INLINE void Unpack(const uint8_t* g, const Shifts& k, VU& i0, VU& i1) {
  const DU64 d64;
  const DU32 d32;
  if constexpr (B == 1) {
    uint32_t w;
    std::memcpy(&w, g, 4);
    const VU v = hn::Set(d32, w);
    i0 = hn::Shr(v, k.bit1a);
    i1 = hn::Shr(v, k.bit1b);
  } else if constexpr (B == 2) {
    uint64_t x;
    std::memcpy(&x, g, 8);
    const auto v = hn::Set(d64, x);
    i0 = hn::BitCast(d32, hn::Shr(v, k.lo2a));
    i1 = hn::BitCast(d32, hn::Shr(v, k.lo2b));
  } else if constexpr (B == 3) {
    uint64_t x;
    uint32_t w2;
    std::memcpy(&x, g, 8);
    std::memcpy(&w2, g + 8, 4);
    const uint64_t z = (uint64_t(w2) << 2) | (uint64_t(w2) << 32);
    const auto vx = hn::Set(d64, x), vz = hn::Set(d64, z);
    i0 = hn::IfVecThenElse(k.mask3, hn::BitCast(d32, hn::Shr(vx, k.lo2a)), hn::BitCast(d32, hn::Shr(vz, k.hi3a)));
    i1 = hn::IfVecThenElse(k.mask3, hn::BitCast(d32, hn::Shr(vx, k.lo2b)), hn::BitCast(d32, hn::Shr(vz, k.hi3b)));
  } else {
    uint64_t x0, x1;
    std::memcpy(&x0, g, 8);
    std::memcpy(&x1, g + 8, 8);
    i0 = hn::BitCast(d32, hn::Shr(hn::Set(d64, x0), k.nib));
    i1 = hn::BitCast(d32, hn::Shr(hn::Set(d64, x1), k.nib));
  }
#if HWY_IS_DEBUG_BUILD
  // The permute ignores the bits above the low 4 on x86; Highway's debug check does not.
  i0 = hn::And(i0, hn::Set(d32, 15u));
  i1 = hn::And(i1, hn::Set(d32, 15u));
#endif
}

HWY_INLINE VF Lookup(VF tab, VU idx) { return hn::TableLookupLanes(tab, hn::IndicesFromVec(D16(), idx)); }

template <int B, int RT>
void DotCodes16(int m, const uint8_t* codes, size_t stride, int n, const float* table, const float* q, size_t ld_q,
                float* s, size_t ld_s) {
  const D16 df;
  const Shifts k;
  alignas(64) float t16[16];
  Table16(B, table, t16);
  const VF tab = hn::Load(df, t16);
  const int groups = m / 32;
  for (int t = 0; t < n; ++t) {
    const uint8_t* c = codes + size_t(t) * stride;
    VF acc[RT];
    for (int r = 0; r < RT; ++r) acc[r] = hn::Zero(df);
    for (int g = 0; g < groups; ++g) {
      VU i0, i1;
      Unpack<B>(c + 4 * B * g, k, i0, i1);
      const VF c0 = Lookup(tab, i0), c1 = Lookup(tab, i1);
      for (int r = 0; r < RT; ++r) {
        acc[r] = hn::MulAdd(c0, hn::LoadU(df, q + r * ld_q + 32 * g), acc[r]);
        acc[r] = hn::MulAdd(c1, hn::LoadU(df, q + r * ld_q + 32 * g + 16), acc[r]);
      }
    }
    for (int r = 0; r < RT; ++r) s[r * ld_s + t] = hn::GetLane(hn::SumOfLanes(df, acc[r]));
    for (int j = 32 * groups; j < m; ++j) {
      const float x = table[tail_code(c, groups, B, j)];
      for (int r = 0; r < RT; ++r) s[r * ld_s + t] += q[r * ld_q + j] * x;
    }
  }
}

// CH groups per pass keep RT x 2CH accumulators in registers.
template <int B, int RT>
void AccCodes16(int m, const uint8_t* codes, size_t stride, int n, const float* table, const float* w, size_t ld_w,
                float* acc, size_t ld_a) {
  constexpr int CH = 8 / RT;
  const D16 df;
  const Shifts k;
  alignas(64) float t16[16];
  Table16(B, table, t16);
  const VF tab = hn::Load(df, t16);
  const int groups = m / 32;
  for (int g0 = 0; g0 < groups; g0 += CH) {
    const int gc = std::min(CH, groups - g0);
    VF a[RT][2 * CH];
    for (int r = 0; r < RT; ++r)
      for (int i = 0; i < 2 * CH; ++i)
        a[r][i] = i < 2 * gc ? hn::LoadU(df, acc + r * ld_a + 32 * g0 + 16 * i) : hn::Zero(df);
    for (int t = 0; t < n; ++t) {
      const uint8_t* c = codes + size_t(t) * stride + 4 * B * g0;
      VF wv[RT];
      for (int r = 0; r < RT; ++r) wv[r] = hn::Set(df, w[r * ld_w + t]);
      for (int gi = 0; gi < CH; ++gi) {
        if (gi >= gc) break;
        VU i0, i1;
        Unpack<B>(c + 4 * B * gi, k, i0, i1);
        const VF c0 = Lookup(tab, i0), c1 = Lookup(tab, i1);
        for (int r = 0; r < RT; ++r) {
          a[r][2 * gi] = hn::MulAdd(c0, wv[r], a[r][2 * gi]);
          a[r][2 * gi + 1] = hn::MulAdd(c1, wv[r], a[r][2 * gi + 1]);
        }
      }
    }
    for (int r = 0; r < RT; ++r)
      for (int i = 0; i < 2 * gc; ++i) hn::StoreU(a[r][i], df, acc + r * ld_a + 32 * g0 + 16 * i);
  }
  for (int t = 0; t < n; ++t) {
    const uint8_t* c = codes + size_t(t) * stride;
    for (int j = 32 * groups; j < m; ++j) {
      const float x = table[tail_code(c, groups, B, j)];
      for (int r = 0; r < RT; ++r) acc[r * ld_a + j] += w[r * ld_w + t] * x;
    }
  }
}

template <int B>
void DotCodesB(int m, const uint8_t* codes, size_t stride, int n, const float* table, const float* q, size_t ld_q,
               int R, float* s, size_t ld_s) {
  int r = 0;
  for (; R - r >= 4; r += 4) DotCodes16<B, 4>(m, codes, stride, n, table, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
  for (; R - r >= 2; r += 2) DotCodes16<B, 2>(m, codes, stride, n, table, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
  for (; r < R; ++r) DotCodes16<B, 1>(m, codes, stride, n, table, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
}
template <int B>
void AccCodesB(int m, const uint8_t* codes, size_t stride, int n, const float* table, const float* w, size_t ld_w,
               int R, float* a, size_t ld_a) {
  int r = 0;
  for (; R - r >= 4; r += 4) AccCodes16<B, 4>(m, codes, stride, n, table, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
  for (; R - r >= 2; r += 2) AccCodes16<B, 2>(m, codes, stride, n, table, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
  for (; r < R; ++r) AccCodes16<B, 1>(m, codes, stride, n, table, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
}
#endif  // TQ_KV_LANES16

// Generic path: decode each token's codes to a float row (natural order), then the float kernels.
void DotCodesGeneric(int bits, int m, const uint8_t* codes, size_t stride, int n, const float* table,
                     const float* q, size_t ld_q, int R, float* s, size_t ld_s) {
  std::vector<uint8_t> idx(static_cast<size_t>(m));
  std::vector<float> x(static_cast<size_t>(m));
  std::vector<float> one(static_cast<size_t>(R));
  for (int t = 0; t < n; ++t) {
    decode_codes(bits, m, codes + size_t(t) * stride, table, idx.data(), x.data());
    DotRowsAll<float>(m, reinterpret_cast<const uint8_t*>(x.data()), 0, 1, q, ld_q, R, one.data(), 1);
    for (int r = 0; r < R; ++r) s[r * ld_s + t] = one[size_t(r)];
  }
}
void AccCodesGeneric(int bits, int m, const uint8_t* codes, size_t stride, int n, const float* table, const float* w,
                     size_t ld_w, int R, float* acc, size_t ld_a) {
  std::vector<uint8_t> idx(static_cast<size_t>(m));
  std::vector<float> x(size_t(m) * size_t(n));
  for (int t = 0; t < n; ++t)
    decode_codes(bits, m, codes + size_t(t) * stride, table, idx.data(), x.data() + size_t(t) * m);
  AccRowsAll<float>(m, reinterpret_cast<const uint8_t*>(x.data()), size_t(m) * 4, n, w, ld_w, R, acc, ld_a);
}

void DotCodesImpl(int bits, int m, const uint8_t* codes, size_t stride, int n, const float* table, const float* q,
                  size_t ld_q, int R, float* s, size_t ld_s) {
#if TQ_KV_LANES16
  switch (bits) {
    case 1: return DotCodesB<1>(m, codes, stride, n, table, q, ld_q, R, s, ld_s);
    case 2: return DotCodesB<2>(m, codes, stride, n, table, q, ld_q, R, s, ld_s);
    case 3: return DotCodesB<3>(m, codes, stride, n, table, q, ld_q, R, s, ld_s);
    case 4: return DotCodesB<4>(m, codes, stride, n, table, q, ld_q, R, s, ld_s);
    default: break;
  }
#endif
  DotCodesGeneric(bits, m, codes, stride, n, table, q, ld_q, R, s, ld_s);
}
void AccCodesImpl(int bits, int m, const uint8_t* codes, size_t stride, int n, const float* table, const float* w,
                  size_t ld_w, int R, float* acc, size_t ld_a) {
#if TQ_KV_LANES16
  switch (bits) {
    case 1: return AccCodesB<1>(m, codes, stride, n, table, w, ld_w, R, acc, ld_a);
    case 2: return AccCodesB<2>(m, codes, stride, n, table, w, ld_w, R, acc, ld_a);
    case 3: return AccCodesB<3>(m, codes, stride, n, table, w, ld_w, R, acc, ld_a);
    case 4: return AccCodesB<4>(m, codes, stride, n, table, w, ld_w, R, acc, ld_a);
    default: break;
  }
#endif
  AccCodesGeneric(bits, m, codes, stride, n, table, w, ld_w, R, acc, ld_a);
}

// ---- scalars and softmax -----------------------------------------------------------------------

void LoadScalarsImpl(const uint8_t* p, size_t stride, int n, bool fp32, float* out) {
  const DF df;
  const int N = int(hn::Lanes(df));
  if (fp32) {
    for (int t = 0; t < n; ++t) std::memcpy(&out[t], p + size_t(t) * stride, 4);
    return;
  }
  int t = 0;
  if (stride == 2) {  // one part, mse: the norms are a contiguous fp16 array
    const hn::Rebind<hwy::float16_t, DF> dh;
    for (; t + N <= n; t += N)
      hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p) + t)), df, out + t);
  }
  for (; t < n; ++t) {
    uint16_t h;
    std::memcpy(&h, p + size_t(t) * stride, 2);
    out[t] = half_to_float(h);
  }
}

float SoftmaxBlockImpl(float* s, int n, float m_old, float* m_new, float* sum) {
  const DF df;
  const int N = int(hn::Lanes(df));
  auto vmax = hn::Set(df, -INFINITY);
  int t = 0;
  for (; t + N <= n; t += N) vmax = hn::Max(vmax, hn::LoadU(df, s + t));
  float bm = hn::GetLane(hn::MaxOfLanes(df, vmax));
  for (; t < n; ++t) bm = std::max(bm, s[t]);
  const float mn = std::max(m_old, bm);
  *m_new = mn;
  if (mn == -INFINITY) {  // nothing visible yet
    std::fill(s, s + n, 0.f);
    *sum = 0;
    return bm;
  }
  const auto vm = hn::Set(df, mn), lo = hn::Set(df, -87.0f);
  auto vs = hn::Zero(df);
  for (t = 0; t + N <= n; t += N) {
    const auto x = hn::Sub(hn::LoadU(df, s + t), vm);
    // Exp is accurate on [-87, 88]; below, the weight is < 1.7e-38 of the largest: exactly 0 here
    // (and -inf, the causal mask, must give exactly 0).
    const auto e = hn::IfThenZeroElse(hn::Lt(x, lo), hn::Exp(df, hn::Max(x, lo)));
    hn::StoreU(e, df, s + t);
    vs = hn::Add(vs, e);
  }
  float total = hn::GetLane(hn::SumOfLanes(df, vs));
  for (; t < n; ++t) {
    const float x = s[t] - mn;
    s[t] = x < -87.0f ? 0.f : std::exp(x);
    total += s[t];
  }
  *sum = total;
  return bm;
}

void ScaleRowImpl(float* x, size_t n, float a) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const auto va = hn::Set(df, a);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), va), df, x + i);
  for (; i < n; ++i) x[i] *= a;
}

void MulRowsImpl(const float* x, const float* c, int n, float* y) {
  const DF df;
  const int N = int(hn::Lanes(df));
  int i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), hn::LoadU(df, c + i)), df, y + i);
  for (; i < n; ++i) y[i] = x[i] * c[i];
}

void MulAddRowsImpl(const float* x, const float* c, int n, float* y) {
  const DF df;
  const int N = int(hn::Lanes(df));
  int i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::MulAdd(hn::LoadU(df, x + i), hn::LoadU(df, c + i), hn::LoadU(df, y + i)), df, y + i);
  for (; i < n; ++i) y[i] += x[i] * c[i];
}

}  // namespace tq::kv::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tq::kv {

HWY_EXPORT(KernelOrderImpl);
HWY_EXPORT(TargetImpl);
HWY_EXPORT(DotCodesImpl);
HWY_EXPORT(AccCodesImpl);
HWY_EXPORT(DotRowsImpl);
HWY_EXPORT(AccRowsImpl);
HWY_EXPORT(LoadScalarsImpl);
HWY_EXPORT(SoftmaxBlockImpl);
HWY_EXPORT(ScaleRowImpl);
HWY_EXPORT(MulRowsImpl);
HWY_EXPORT(MulAddRowsImpl);

std::vector<int> kernel_order(int bits, int m) { return HWY_DYNAMIC_DISPATCH(KernelOrderImpl)(bits, m); }
const char* kernel_target() { return HWY_DYNAMIC_DISPATCH(TargetImpl)(); }
void dot_codes(int bits, int m, const uint8_t* codes, size_t stride, int n, const float* table, const float* q,
               size_t ld_q, int R, float* s, size_t ld_s) {
  HWY_DYNAMIC_DISPATCH(DotCodesImpl)(bits, m, codes, stride, n, table, q, ld_q, R, s, ld_s);
}
void acc_codes(int bits, int m, const uint8_t* codes, size_t stride, int n, const float* table, const float* w,
               size_t ld_w, int R, float* acc, size_t ld_a) {
  HWY_DYNAMIC_DISPATCH(AccCodesImpl)(bits, m, codes, stride, n, table, w, ld_w, R, acc, ld_a);
}
void dot_rows(DType dt, int D, const void* rows, size_t stride, int n, const float* q, size_t ld_q, int R, float* s,
              size_t ld_s) {
  HWY_DYNAMIC_DISPATCH(DotRowsImpl)(dt, D, rows, stride, n, q, ld_q, R, s, ld_s);
}
void acc_rows(DType dt, int D, const void* rows, size_t stride, int n, const float* w, size_t ld_w, int R,
              float* acc, size_t ld_a) {
  HWY_DYNAMIC_DISPATCH(AccRowsImpl)(dt, D, rows, stride, n, w, ld_w, R, acc, ld_a);
}
void load_scalars(const uint8_t* p, size_t stride, int n, bool fp32, float* out) {
  HWY_DYNAMIC_DISPATCH(LoadScalarsImpl)(p, stride, n, fp32, out);
}
float softmax_block(float* s, int n, float m_old, float* m_new, float* sum) {
  return HWY_DYNAMIC_DISPATCH(SoftmaxBlockImpl)(s, n, m_old, m_new, sum);
}
void scale_row(float* x, size_t n, float a) { HWY_DYNAMIC_DISPATCH(ScaleRowImpl)(x, n, a); }
void mul_rows(const float* x, const float* c, int n, float* y) { HWY_DYNAMIC_DISPATCH(MulRowsImpl)(x, c, n, y); }
void mul_add_rows(const float* x, const float* c, int n, float* y) {
  HWY_DYNAMIC_DISPATCH(MulAddRowsImpl)(x, c, n, y);
}

}  // namespace tq::kv
#endif  // HWY_ONCE
