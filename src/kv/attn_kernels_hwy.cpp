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
#include "kv/code_unpack-inl.h"
#include "turboquant/half.h"
#include "turboquant/layout.h"
#include "turboquant/pack.h"

HWY_BEFORE_NAMESPACE();
namespace tq::kv::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

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
#if TQ_KV_LANES16
// The 16-lane form: two tokens per q load and the horizontal sums 16 tokens at a time (Reduce16),
// as in the code kernels, so that the float peers get the same treatment.
template <typename T, int RT>
void DotRows16(int D, const TokenRun& tr, const float* q, size_t ld_q, float* s, size_t ld_s) {
  const D16 df;
  const int full = D / 16 * 16;
  alignas(64) float part[RT][16 * 16];
  Cursor cur(tr, 0);
  for (int t0 = 0; t0 < tr.n; t0 += 16) {
    const int nt = std::min(16, tr.n - t0);
    for (int tt = 0; tt < nt;) {
      const int pair = tt + 1 < nt ? 2 : 1;
      const T* xa = reinterpret_cast<const T*>(cur.get());
      cur.next();
      const T* xb = xa;
      if (pair == 2) {
        xb = reinterpret_cast<const T*>(cur.get());
        cur.next();
      }
      VF acc[RT], bcc[RT];
      for (int r = 0; r < RT; ++r) acc[r] = bcc[r] = hn::Zero(df);
      for (int j = 0; j < full; j += 16) {
        const VF a = LoadRow(df, xa + j), b = LoadRow(df, xb + j);
        for (int r = 0; r < RT; ++r) {
          const VF qv = hn::LoadU(df, q + r * ld_q + j);
          acc[r] = hn::MulAdd(a, qv, acc[r]);
          bcc[r] = hn::MulAdd(b, qv, bcc[r]);
        }
      }
      for (int r = 0; r < RT; ++r) {
        hn::Store(acc[r], df, part[r] + 16 * tt);
        if (pair == 2) hn::Store(bcc[r], df, part[r] + 16 * (tt + 1));
      }
      for (int j = full; j < D; ++j)  // tail coordinates into lane 0 of the partial sums
        for (int r = 0; r < RT; ++r) {
          part[r][16 * tt] += q[r * ld_q + j] * ScalarOf(xa + j);
          if (pair == 2) part[r][16 * (tt + 1)] += q[r * ld_q + j] * ScalarOf(xb + j);
        }
      tt += pair;
    }
    for (int r = 0; r < RT; ++r) {
      if (nt == 16) {
        Reduce16(part[r], s + r * ld_s + t0);
      } else {
        for (int tt = 0; tt < nt; ++tt)
          s[r * ld_s + t0 + tt] = hn::GetLane(hn::SumOfLanes(df, hn::Load(df, part[r] + 16 * tt)));
      }
    }
  }
}
#endif

template <typename T, int RT>
void DotRowsT(int D, const TokenRun& tr, const float* q, size_t ld_q, float* s, size_t ld_s) {
#if TQ_KV_LANES16
  return DotRows16<T, RT>(D, tr, q, ld_q, s, ld_s);
#else
  const DF df;
  const int N = int(hn::Lanes(df)), full = D / N * N;
  Cursor cur(tr, 0);
  for (int t = 0; t < tr.n; ++t, cur.next()) {
    const T* x = reinterpret_cast<const T*>(cur.get());
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
#endif
}

// acc[r][j] += Σ_t w[r][t] x_t[j]: coordinates in passes of K vectors (compile-time, so that the
// RT*K accumulators stay in registers while the tokens stream by).
template <typename T, int RT, int K>
HWY_INLINE void AccRowsPass(const TokenRun& tr, const float* w, size_t ld_w, float* acc, size_t ld_a, int j0) {
  const DF df;
  const int N = int(hn::Lanes(df));
  hn::Vec<DF> a[RT][K];
  for (int r = 0; r < RT; ++r)
    for (int k = 0; k < K; ++k) a[r][k] = hn::LoadU(df, acc + r * ld_a + j0 + k * N);
  Cursor cur(tr, 0);
  for (int t = 0; t < tr.n; ++t, cur.next()) {
    const T* x = reinterpret_cast<const T*>(cur.get()) + j0;
    hn::Vec<DF> wv[RT];
    for (int r = 0; r < RT; ++r) wv[r] = hn::Set(df, w[r * ld_w + t]);
    for (int k = 0; k < K; ++k) {
      const auto xv = LoadRow(df, x + k * N);
      for (int r = 0; r < RT; ++r) a[r][k] = hn::MulAdd(xv, wv[r], a[r][k]);
    }
  }
  for (int r = 0; r < RT; ++r)
    for (int k = 0; k < K; ++k) hn::StoreU(a[r][k], df, acc + r * ld_a + j0 + k * N);
}

template <typename T, int RT>
void AccRowsT(int D, const TokenRun& tr, const float* w, size_t ld_w, float* acc, size_t ld_a) {
  const DF df;
  constexpr int K = 16 / RT;
  const int N = int(hn::Lanes(df)), full = D / N * N;
  int j0 = 0;
  for (; j0 + K * N <= full; j0 += K * N) AccRowsPass<T, RT, K>(tr, w, ld_w, acc, ld_a, j0);
  for (; j0 < full; j0 += N) AccRowsPass<T, RT, 1>(tr, w, ld_w, acc, ld_a, j0);
  if (full == D) return;
  Cursor cur(tr, 0);
  for (int t = 0; t < tr.n; ++t, cur.next()) {
    const T* x = reinterpret_cast<const T*>(cur.get());
    for (int j = full; j < D; ++j) {
      const float xv = ScalarOf(x + j);
      for (int r = 0; r < RT; ++r) acc[r * ld_a + j] += w[r * ld_w + t] * xv;
    }
  }
}

// Row tiles of 4, 2, 1: each tile reads the tokens once.
template <typename T>
void DotRowsAll(int D, const TokenRun& tr, const float* q, size_t ld_q, int R, float* s, size_t ld_s) {
  int r = 0;
  for (; R - r >= 4; r += 4) DotRowsT<T, 4>(D, tr, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
  for (; R - r >= 2; r += 2) DotRowsT<T, 2>(D, tr, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
  for (; r < R; ++r) DotRowsT<T, 1>(D, tr, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
}
template <typename T>
void AccRowsAll(int D, const TokenRun& tr, const float* w, size_t ld_w, int R, float* a, size_t ld_a) {
  int r = 0;
  for (; R - r >= 4; r += 4) AccRowsT<T, 4>(D, tr, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
  for (; R - r >= 2; r += 2) AccRowsT<T, 2>(D, tr, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
  for (; r < R; ++r) AccRowsT<T, 1>(D, tr, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
}

void DotRowsImpl(DType dt, int D, const TokenRun& tr, const float* q, size_t ld_q, int R, float* s, size_t ld_s) {
  if (tr.n <= 0) return;
  if (dt == DType::kF32) DotRowsAll<float>(D, tr, q, ld_q, R, s, ld_s);
  else if (dt == DType::kF16) DotRowsAll<hwy::float16_t>(D, tr, q, ld_q, R, s, ld_s);
  else DotRowsAll<hwy::bfloat16_t>(D, tr, q, ld_q, R, s, ld_s);
}
void AccRowsImpl(DType dt, int D, const TokenRun& tr, const float* w, size_t ld_w, int R, float* acc, size_t ld_a) {
  if (tr.n <= 0) return;
  if (dt == DType::kF32) AccRowsAll<float>(D, tr, w, ld_w, R, acc, ld_a);
  else if (dt == DType::kF16) AccRowsAll<hwy::float16_t>(D, tr, w, ld_w, R, acc, ld_a);
  else AccRowsAll<hwy::bfloat16_t>(D, tr, w, ld_w, R, acc, ld_a);
}

// ---- packed codes ------------------------------------------------------------------------------

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
// Scores of n tokens: per token RT accumulators over the groups; their horizontal sums are done
// 16 tokens at a time (Reduce16).
template <int B, int RT>
void DotCodes16(int m, const TokenRun& tr, size_t off, const float* table, const float* q, size_t ld_q, float* s,
                size_t ld_s) {
  const D16 df;
  const Shifts k;
  alignas(64) float t16[16];
  Table16(B, table, t16);
  const VF tab = hn::Load(df, t16);
  const int groups = m / 32;
  alignas(64) float part[RT][16 * 16];
  const int n = tr.n;
  Cursor cur(tr, off);
  for (int t0 = 0; t0 < n; t0 += 16) {
    const int nt = std::min(16, n - t0);
    int tt = 0;
    // Two tokens at a time: each q vector loaded once feeds both (loads, not FMAs, bound the
    // single-token loop: 2 q loads per FMA pair).
    for (; tt + 2 <= nt; tt += 2) {
      const uint8_t* ca = cur.get();
      cur.next();
      const uint8_t* cb = cur.get();
      cur.next();
      VF acc[RT], bcc[RT];
      for (int r = 0; r < RT; ++r) acc[r] = bcc[r] = hn::Zero(df);
      for (int g = 0; g < groups; ++g) {
        VU i0, i1, j0, j1;
        Unpack<B>(ca + 4 * B * g, k, i0, i1);
        Unpack<B>(cb + 4 * B * g, k, j0, j1);
        const VF a0 = Lookup(tab, i0), a1 = Lookup(tab, i1), b0 = Lookup(tab, j0), b1 = Lookup(tab, j1);
        for (int r = 0; r < RT; ++r) {
          const VF q0 = hn::LoadU(df, q + r * ld_q + 32 * g), q1 = hn::LoadU(df, q + r * ld_q + 32 * g + 16);
          acc[r] = hn::MulAdd(a1, q1, hn::MulAdd(a0, q0, acc[r]));
          bcc[r] = hn::MulAdd(b1, q1, hn::MulAdd(b0, q0, bcc[r]));
        }
      }
      for (int r = 0; r < RT; ++r) {
        hn::Store(acc[r], df, part[r] + 16 * tt);
        hn::Store(bcc[r], df, part[r] + 16 * tt + 16);
      }
    }
    for (; tt < nt; ++tt, cur.next()) {
      const uint8_t* c = cur.get();
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
      for (int r = 0; r < RT; ++r) hn::Store(acc[r], df, part[r] + 16 * tt);
    }
    for (int r = 0; r < RT; ++r) {
      if (nt == 16) {
        Reduce16(part[r], s + r * ld_s + t0);
      } else {
        for (int tt = 0; tt < nt; ++tt) s[r * ld_s + t0 + tt] = hn::GetLane(hn::SumOfLanes(df, hn::Load(df, part[r] + 16 * tt)));
      }
    }
  }
  if (32 * groups < m) {
    Cursor tc(tr, off);
    for (int t = 0; t < n; ++t, tc.next()) {
      const uint8_t* c = tc.get();
      for (int j = 32 * groups; j < m; ++j) {
        const float x = table[tail_code(c, groups, B, j)];
        for (int r = 0; r < RT; ++r) s[r * ld_s + t] += q[r * ld_q + j] * x;
      }
    }
  }
}

// One pass over the tokens for NG consecutive groups (compile-time, so that the RT x 2NG
// accumulators stay in registers).
template <int B, int RT, int NG>
HWY_INLINE void AccPass(const TokenRun& tr, size_t off, VF tab, const Shifts& k, const float* w, size_t ld_w,
                        float* acc, size_t ld_a, int g0) {
  const D16 df;
  VF a[RT][2 * NG];
  for (int r = 0; r < RT; ++r)
    for (int i = 0; i < 2 * NG; ++i) a[r][i] = hn::LoadU(df, acc + r * ld_a + 32 * g0 + 16 * i);
  Cursor cur(tr, off + size_t(4 * B * g0));
  for (int t = 0; t < tr.n; ++t, cur.next()) {
    const uint8_t* c = cur.get();
    VF wv[RT];
    for (int r = 0; r < RT; ++r) wv[r] = hn::Set(df, w[r * ld_w + t]);
    for (int gi = 0; gi < NG; ++gi) {
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
    for (int i = 0; i < 2 * NG; ++i) hn::StoreU(a[r][i], df, acc + r * ld_a + 32 * g0 + 16 * i);
}

template <int B, int RT>
void AccCodes16(int m, const TokenRun& tr, size_t off, const float* table, const float* w, size_t ld_w, float* acc,
                size_t ld_a) {
  constexpr int CH = 8 / RT;  // 16 accumulators
  const Shifts k;
  alignas(64) float t16[16];
  Table16(B, table, t16);
  const VF tab = hn::Load(D16(), t16);
  const int groups = m / 32;
  int g0 = 0;
  for (; g0 + CH <= groups; g0 += CH) AccPass<B, RT, CH>(tr, off, tab, k, w, ld_w, acc, ld_a, g0);
  for (; g0 < groups; ++g0) AccPass<B, RT, 1>(tr, off, tab, k, w, ld_w, acc, ld_a, g0);
  if (32 * groups == m) return;
  Cursor cur(tr, off);
  for (int t = 0; t < tr.n; ++t, cur.next()) {
    const uint8_t* c = cur.get();
    for (int j = 32 * groups; j < m; ++j) {
      const float x = table[tail_code(c, groups, B, j)];
      for (int r = 0; r < RT; ++r) acc[r * ld_a + j] += w[r * ld_w + t] * x;
    }
  }
}

template <int B>
void DotCodesB(int m, const TokenRun& tr, size_t off, const float* table, const float* q, size_t ld_q, int R, float* s,
               size_t ld_s) {
  int r = 0;
  for (; R - r >= 4; r += 4) DotCodes16<B, 4>(m, tr, off, table, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
  for (; R - r >= 2; r += 2) DotCodes16<B, 2>(m, tr, off, table, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
  for (; r < R; ++r) DotCodes16<B, 1>(m, tr, off, table, q + r * ld_q, ld_q, s + r * ld_s, ld_s);
}
template <int B>
void AccCodesB(int m, const TokenRun& tr, size_t off, const float* table, const float* w, size_t ld_w, int R, float* a,
               size_t ld_a) {
  int r = 0;
  for (; R - r >= 4; r += 4) AccCodes16<B, 4>(m, tr, off, table, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
  for (; R - r >= 2; r += 2) AccCodes16<B, 2>(m, tr, off, table, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
  for (; r < R; ++r) AccCodes16<B, 1>(m, tr, off, table, w + r * ld_w, ld_w, a + r * ld_a, ld_a);
}
#endif  // TQ_KV_LANES16

// Generic path: decode each token's codes to a float row (natural order), then the float kernels.
void DotCodesGeneric(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* q, size_t ld_q,
                     int R, float* s, size_t ld_s) {
  std::vector<uint8_t> idx(static_cast<size_t>(m));
  std::vector<float> x(static_cast<size_t>(m) * size_t(tr.n));
  Cursor cur(tr, off);
  for (int t = 0; t < tr.n; ++t, cur.next()) decode_codes(bits, m, cur.get(), table, idx.data(), &x[size_t(t) * m]);
  const uint8_t* base = reinterpret_cast<const uint8_t*>(x.data());
  const int count = tr.n;
  DotRowsAll<float>(m, TokenRun{&base, &count, 1, size_t(m) * 4, tr.n}, q, ld_q, R, s, ld_s);
}
void AccCodesGeneric(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* w, size_t ld_w,
                     int R, float* acc, size_t ld_a) {
  std::vector<uint8_t> idx(static_cast<size_t>(m));
  std::vector<float> x(static_cast<size_t>(m) * size_t(tr.n));
  Cursor cur(tr, off);
  for (int t = 0; t < tr.n; ++t, cur.next()) decode_codes(bits, m, cur.get(), table, idx.data(), &x[size_t(t) * m]);
  const uint8_t* base = reinterpret_cast<const uint8_t*>(x.data());
  const int count = tr.n;
  AccRowsAll<float>(m, TokenRun{&base, &count, 1, size_t(m) * 4, tr.n}, w, ld_w, R, acc, ld_a);
}

void DotCodesImpl(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* q, size_t ld_q,
                  int R, float* s, size_t ld_s) {
  if (tr.n <= 0) return;
#if TQ_KV_LANES16
  switch (bits) {
    case 1: return DotCodesB<1>(m, tr, off, table, q, ld_q, R, s, ld_s);
    case 2: return DotCodesB<2>(m, tr, off, table, q, ld_q, R, s, ld_s);
    case 3: return DotCodesB<3>(m, tr, off, table, q, ld_q, R, s, ld_s);
    case 4: return DotCodesB<4>(m, tr, off, table, q, ld_q, R, s, ld_s);
    default: break;
  }
#endif
  DotCodesGeneric(bits, m, tr, off, table, q, ld_q, R, s, ld_s);
}
void AccCodesImpl(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* w, size_t ld_w,
                  int R, float* acc, size_t ld_a) {
  if (tr.n <= 0) return;
#if TQ_KV_LANES16
  switch (bits) {
    case 1: return AccCodesB<1>(m, tr, off, table, w, ld_w, R, acc, ld_a);
    case 2: return AccCodesB<2>(m, tr, off, table, w, ld_w, R, acc, ld_a);
    case 3: return AccCodesB<3>(m, tr, off, table, w, ld_w, R, acc, ld_a);
    case 4: return AccCodesB<4>(m, tr, off, table, w, ld_w, R, acc, ld_a);
    default: break;
  }
#endif
  AccCodesGeneric(bits, m, tr, off, table, w, ld_w, R, acc, ld_a);
}

// ---- scalars and softmax -----------------------------------------------------------------------

void LoadScalarsImpl(const TokenRun& tr, size_t off, bool fp32, float* out) {
  const DF df;
  const int N = int(hn::Lanes(df));
  int t = 0;
  for (int sg = 0; sg < tr.nseg; ++sg) {
    const uint8_t* p = tr.base[sg] + off;
    const int cnt = tr.count[sg];
    int k = 0;
    if (fp32) {
      for (; k < cnt; ++k) std::memcpy(&out[t + k], p + size_t(k) * tr.stride, 4);
    } else {
      if (tr.stride == 2) {  // one part, mse: the norms are a contiguous fp16 array
        const hn::Rebind<hwy::float16_t, DF> dh;
        for (; k + N <= cnt; k += N)
          hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p) + k)), df, out + t + k);
      }
      for (; k < cnt; ++k) {
        uint16_t h;
        std::memcpy(&h, p + size_t(k) * tr.stride, 2);
        out[t + k] = half_to_float(h);
      }
    }
    t += cnt;
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
void dot_codes(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* q, size_t ld_q,
               int R, float* s, size_t ld_s) {
  HWY_DYNAMIC_DISPATCH(DotCodesImpl)(bits, m, tr, off, table, q, ld_q, R, s, ld_s);
}
void acc_codes(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* w, size_t ld_w,
               int R, float* acc, size_t ld_a) {
  HWY_DYNAMIC_DISPATCH(AccCodesImpl)(bits, m, tr, off, table, w, ld_w, R, acc, ld_a);
}
void dot_rows(DType dt, int D, const TokenRun& tr, const float* q, size_t ld_q, int R, float* s, size_t ld_s) {
  HWY_DYNAMIC_DISPATCH(DotRowsImpl)(dt, D, tr, q, ld_q, R, s, ld_s);
}
void acc_rows(DType dt, int D, const TokenRun& tr, const float* w, size_t ld_w, int R, float* acc, size_t ld_a) {
  HWY_DYNAMIC_DISPATCH(AccRowsImpl)(dt, D, tr, w, ld_w, R, acc, ld_a);
}
void load_scalars(const TokenRun& tr, size_t off, bool fp32, float* out) {
  HWY_DYNAMIC_DISPATCH(LoadScalarsImpl)(tr, off, fp32, out);
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
