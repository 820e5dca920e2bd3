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

// Walks the tokens of a TokenRun in order.
class Cursor {
 public:
  Cursor(const TokenRun& r, size_t off) : r_(r), off_(off), left_(r.count[0]), p_(r.base[0] + off) {}
  const uint8_t* get() const { return p_; }
  void next() {
    if (--left_ == 0 && ++seg_ < r_.nseg) {
      p_ = r_.base[seg_] + off_;
      left_ = r_.count[seg_];
    } else {
      p_ += r_.stride;
    }
  }

 private:
  const TokenRun& r_;
  size_t off_;
  int seg_ = 0, left_;
  const uint8_t* p_;
};

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
void DotRowsT(int D, const TokenRun& tr, const float* q, size_t ld_q, float* s, size_t ld_s) {
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

// Horizontal sums of 16 vectors at once: out[i] = Σ lanes of v[i] (v: 16 x 16 floats). A transpose-
// and-add tree, ~3 ops per vector instead of ~11 for a reduction each.
HWY_INLINE void Reduce16(const float* v, float* out) {
  const D16 df;
  const hn::Repartition<double, D16> dd;
  VF a[8], b[4];
  for (int i = 0; i < 8; ++i) {  // per 128-bit block: [x0+x2, y0+y2, x1+x3, y1+y3]
    const VF x = hn::Load(df, v + 32 * i), y = hn::Load(df, v + 32 * i + 16);
    a[i] = hn::Add(hn::InterleaveLower(x, y), hn::InterleaveUpper(df, x, y));
  }
  for (int i = 0; i < 4; ++i) {  // per block: one partial of 4 consecutive vectors, in order
    const auto x = hn::BitCast(dd, a[2 * i]), y = hn::BitCast(dd, a[2 * i + 1]);
    b[i] = hn::Add(hn::BitCast(df, hn::InterleaveLower(x, y)), hn::BitCast(df, hn::InterleaveUpper(dd, x, y)));
  }
  // c01 blocks: [v0-3 A, v0-3 B, v4-7 A, v4-7 B] with A = blocks 0+2, B = blocks 1+3.
  const VF c01 = hn::Add(hn::ConcatLowerLower(df, b[1], b[0]), hn::ConcatUpperUpper(df, b[1], b[0]));
  const VF c23 = hn::Add(hn::ConcatLowerLower(df, b[3], b[2]), hn::ConcatUpperUpper(df, b[3], b[2]));
  const VF g = hn::ConcatLowerLower(df, c23, c01);  // [v0-3 A, v0-3 B, v8-11 A, v8-11 B]
  const VF h = hn::ConcatUpperUpper(df, c23, c01);  // [v4-7 A, v4-7 B, v12-15 A, v12-15 B]
  alignas(64) static constexpr int32_t kSwap[16] = {4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11};
  const auto swap = hn::SetTableIndices(df, kSwap);
  const VF sum = hn::Add(hn::OddEvenBlocks(h, g), hn::TableLookupLanes(hn::OddEvenBlocks(g, h), swap));
  hn::StoreU(sum, df, out);
}

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
