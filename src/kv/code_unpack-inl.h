// src/kv/code_unpack-inl.h — per-target pieces shared by the attention kernels: walking token runs,
// the dense code tail, and on 16-lane targets the unpacking of 32-code groups into permute
// indices (see attn_kernels_hwy.cpp for the scheme). Included once per Highway target.
#if defined(TQ_KV_CODE_UNPACK_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef TQ_KV_CODE_UNPACK_INL_H_
#undef TQ_KV_CODE_UNPACK_INL_H_
#else
#define TQ_KV_CODE_UNPACK_INL_H_
#endif

#include <hwy/highway.h>

#include <cstring>

#include "kv/attn_kernels.h"
#include "turboquant/pack.h"

HWY_BEFORE_NAMESPACE();
namespace tq::kv::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

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

#endif  // TQ_KV_LANES16

}  // namespace tq::kv::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // TQ_KV_CODE_UNPACK_INL_H_
