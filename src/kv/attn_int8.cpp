// src/kv/attn_int8.cpp — int8 code scoring with AVX-512 VNNI + VBMI (see attn_int8.h).
//
// Register layout of one 32-code group of a token pair: byte lane i = 32·tok + c (tok 0 = A,
// 1 = B; c = code 0..31 of the group, natural order). Qword L = 4·tok + w holds codes 8w..8w+7;
// vpermi2b copies into it the plane bytes those codes live in (layout.h, group-plane packing):
//   4-bit plane: word w (4 bytes), code 8w+b at bit 4b
//   2-bit plane: bytes 2w, 2w+1,    code 8w+b at bit 2b
//   1-bit plane: bytes 2(w&1), +1,  code 8w+b at bit 4(b>>1) + 2(w>>1) + (b&1)
// and vpmultishiftqb moves each code's bits to the bottom of its byte (for 3 bits the 1-bit
// plane's bit goes to bit 2 and one vpternlogd merges). vpermb then reads only the low 6 bits, so
// the bits above the code are harmless: the 64-byte table repeats the 2^b centroids.
// Scores: vpdpbusd(acc, centroid bytes (unsigned, +128), q bytes of the group in both halves):
// int32 lanes 0-7 hold token A's partial sums, 8-15 token B's.
#include "kv/attn_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TQ_INT8_X86 1
#else
#define TQ_INT8_X86 0
#endif

namespace tq::kv {

bool int8_scores_fit(int bits, int m) { return bits >= 1 && bits <= 4 && m > 0 && m % 32 == 0; }

bool int8_scores_available() {
#if TQ_INT8_X86
  static const bool ok = [] {
    const char* e = std::getenv("TQ_KV_NO_INT8");
    if (e && *e && *e != '0') return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi");
  }();
  return ok;
#else
  return false;
#endif
}

Int8Table make_int8_table(int bits, const float* table) {
  Int8Table t{};
  const int k = 1 << bits;
  float mx = 0;
  for (int i = 0; i < k; ++i) mx = std::max(mx, std::fabs(table[i]));
  t.cs = mx > 0 ? mx / 127.f : 1.f;
  for (int i = 0; i < 64; ++i) {
    const long v = std::lround(table[i & (k - 1)] / t.cs);
    t.lut[i] = uint8_t(128 + std::clamp<long>(v, -127, 127));
  }
  return t;
}

void quantize_query(const float* q, size_t ld_q, int R, int m, Int8Query& out) {
  out.m = m;
  out.R = R;
  out.q8.assign(size_t(R) * m, 0);
  out.qs.assign(size_t(R), 1.f);
  out.corr.assign(size_t(R), 0);
  for (int r = 0; r < R; ++r) {
    const float* x = q + r * ld_q;
    float mx = 0;
    for (int j = 0; j < m; ++j) mx = std::max(mx, std::fabs(x[j]));
    const float qs = mx > 0 ? mx / 127.f : 1.f;
    int32_t sum = 0;
    for (int j = 0; j < m; ++j) {
      const int v = int(std::lround(x[j] / qs));
      out.q8[size_t(r) * m + j] = int8_t(std::clamp(v, -127, 127));
      sum += out.q8[size_t(r) * m + j];
    }
    out.qs[size_t(r)] = qs;
    out.corr[size_t(r)] = 128 * sum;
  }
}

#if TQ_INT8_X86
namespace {

#define TQ_INT8_ATTR __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512vbmi")))

// Byte source of lane i for a group at byte gb of both tokens' loaded chunks (A: 0..63, B: 64..127).
int source_byte(int bits, int gb, int i) {
  const int L = i >> 3, b = i & 7, tok = L >> 2, w = L & 3;
  int s;
  switch (bits) {
    case 4: s = 4 * w + (b < 4 ? b : 0); break;
    case 2: s = 2 * w + (b < 2 ? b : 0); break;
    case 3: s = b < 2 ? 2 * w + b : b < 4 ? 8 + 2 * (w & 1) + (b - 2) : 2 * w; break;
    default: s = 2 * (w & 1) + (b < 2 ? b : 0); break;  // 1
  }
  return 64 * tok + gb + s;
}
// vpmultishiftqb control of lane i: the bit offset of its code's (low) bits in its qword.
int shift_lo(int bits, int i) {
  const int L = i >> 3, b = i & 7, w = L & 3;
  if (bits == 4) return 4 * b;
  if (bits == 1) return 4 * (b >> 1) + 2 * (w >> 1) + (b & 1);
  return 2 * b;
}
// 3 bits: the 1-bit plane's bit (bytes 2-3 of the qword) to bit 2 of the byte.
int shift_hi(int i) {
  const int L = i >> 3, b = i & 7, w = L & 3;
  return (16 + 4 * (b >> 1) + 2 * (w >> 1) + (b & 1) - 2) & 63;
}

struct Cur {
  const TokenRun& r;
  size_t off;
  int seg = 0, left;
  const uint8_t* p;
  Cur(const TokenRun& tr, size_t o) : r(tr), off(o), left(tr.count[0]), p(tr.base[0] + o) {}
  const uint8_t* next() {  // returns the current token's pointer and advances
    const uint8_t* c = p;
    if (--left == 0 && ++seg < r.nseg) {
      p = r.base[seg] + off;
      left = r.count[seg];
    } else {
      p += r.stride;
    }
    return c;
  }
};

// 8 pair accumulators (lanes 0-7: token 2p, 8-15: token 2p+1) -> 16 token sums in order.
TQ_INT8_ATTR inline __m512i reduce_pairs(const __m512i* v) {
  __m512i x[4], y[2];
  for (int i = 0; i < 4; ++i)
    x[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 2; ++i) {
    const __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(x[2 * i], x[2 * i + 1]),
                                       _mm512_unpackhi_epi64(x[2 * i], x[2 * i + 1]));
    // block k: the 4 pairs' sums over block k; A = blocks 0+1, B = blocks 2+3
    y[i] = _mm512_add_epi32(s, _mm512_shuffle_i32x4(s, s, _MM_SHUFFLE(2, 3, 0, 1)));
  }
  // [A p0-3 | B p0-3 | A p4-7 | B p4-7]
  const __m512i z = _mm512_shuffle_i32x4(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0));
  const __m512i idx = _mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
  return _mm512_permutexvar_epi32(idx, z);
}

template <int B, int RT>
TQ_INT8_ATTR void dot_i8(int m, const TokenRun& tr, size_t off, const Int8Table& tab, const Int8Query& q, int r0,
                         float* s, size_t ld_s) {
  constexpr int GB = 4 * B;                           // bytes per group
  constexpr int CG = 64 / GB < 16 ? 64 / GB : 16;     // groups per loaded chunk
  const int groups = m / 32;
  struct Ctl {
    alignas(64) uint8_t idx[CG][64], lo[64], hi[64];
    Ctl() {
      for (int gi = 0; gi < CG; ++gi)
        for (int i = 0; i < 64; ++i) idx[gi][i] = uint8_t(source_byte(B, GB * gi, i));
      for (int i = 0; i < 64; ++i) {
        lo[i] = uint8_t(shift_lo(B, i));
        hi[i] = uint8_t(shift_hi(i));
      }
    }
  };
  static const Ctl ctl;
  const auto& idx_b = ctl.idx;
  const __m512i lut = _mm512_load_si512(tab.lut), ctl_lo = _mm512_load_si512(ctl.lo), ctl_hi = _mm512_load_si512(ctl.hi);
  const __m512i mask3 = _mm512_set1_epi8(3);
  const int8_t* qb[RT];
  __m512i corr[RT];
  __m512 scale[RT];
  for (int r = 0; r < RT; ++r) {
    qb[r] = q.q8.data() + size_t(r0 + r) * m;
    corr[r] = _mm512_set1_epi32(q.corr[size_t(r0 + r)]);
    scale[r] = _mm512_set1_ps(q.qs[size_t(r0 + r)] * tab.cs);
  }
  Cur cur(tr, off);
  const int n = tr.n;
  for (int t0 = 0; t0 < n; t0 += 16) {
    const int nt = std::min(16, n - t0);
    __m512i part[RT][8];
    for (int p = 0; p < 8; ++p) {
      if (2 * p >= nt) {
        for (int r = 0; r < RT; ++r) part[r][p] = _mm512_setzero_si512();
        continue;
      }
      const uint8_t* ca = cur.next();
      const uint8_t* cb = 2 * p + 1 < nt ? cur.next() : ca;
      __m512i acc[RT];
      for (int r = 0; r < RT; ++r) acc[r] = _mm512_setzero_si512();
      for (int g0 = 0; g0 < groups; g0 += CG) {
        const int cg = std::min(CG, groups - g0);
        const __mmask64 lm = cg * GB >= 64 ? ~__mmask64(0) : (__mmask64(1) << (cg * GB)) - 1;
        const __m512i a = _mm512_maskz_loadu_epi8(lm, ca + size_t(GB) * g0);
        const __m512i b = _mm512_maskz_loadu_epi8(lm, cb + size_t(GB) * g0);
        for (int gi = 0; gi < cg; ++gi) {
          const __m512i x = _mm512_permutex2var_epi8(a, _mm512_load_si512(idx_b[gi]), b);
          __m512i v = _mm512_multishift_epi64_epi8(ctl_lo, x);
          if constexpr (B == 3) v = _mm512_ternarylogic_epi32(mask3, v, _mm512_multishift_epi64_epi8(ctl_hi, x), 0xCA);
          const __m512i c = _mm512_permutexvar_epi8(v, lut);
          const int g = g0 + gi;
          for (int r = 0; r < RT; ++r) {
            const __m512i qv =
                _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb[r] + 32 * g)));
            acc[r] = _mm512_dpbusd_epi32(acc[r], c, qv);
          }
        }
      }
      for (int r = 0; r < RT; ++r) part[r][p] = acc[r];
    }
    const __mmask16 sm = nt == 16 ? __mmask16(0xFFFF) : __mmask16((1u << nt) - 1);
    for (int r = 0; r < RT; ++r) {
      const __m512i tot = _mm512_sub_epi32(reduce_pairs(part[r]), corr[r]);
      _mm512_mask_storeu_ps(s + r * ld_s + t0, sm, _mm512_mul_ps(_mm512_cvtepi32_ps(tot), scale[r]));
    }
  }
}

template <int B>
TQ_INT8_ATTR void dot_rows_i8(int m, const TokenRun& tr, size_t off, const Int8Table& tab, const Int8Query& q,
                              float* s, size_t ld_s) {
  const int R = q.R;
  int r = 0;
  for (; R - r >= 4; r += 4) dot_i8<B, 4>(m, tr, off, tab, q, r, s + r * ld_s, ld_s);
  for (; R - r >= 2; r += 2) dot_i8<B, 2>(m, tr, off, tab, q, r, s + r * ld_s, ld_s);
  for (; r < R; ++r) dot_i8<B, 1>(m, tr, off, tab, q, r, s + r * ld_s, ld_s);
}

}  // namespace
#endif

void dot_codes_i8(int bits, int m, const TokenRun& tr, size_t off, const Int8Table& tab, const Int8Query& q, float* s,
                  size_t ld_s) {
  if (tr.n <= 0) return;
#if TQ_INT8_X86
  switch (bits) {
    case 1: return dot_rows_i8<1>(m, tr, off, tab, q, s, ld_s);
    case 2: return dot_rows_i8<2>(m, tr, off, tab, q, s, ld_s);
    case 3: return dot_rows_i8<3>(m, tr, off, tab, q, s, ld_s);
    case 4: return dot_rows_i8<4>(m, tr, off, tab, q, s, ld_s);
    default: break;
  }
#endif
  (void)bits, (void)m, (void)off, (void)tab, (void)q, (void)s, (void)ld_s;
}

}  // namespace tq::kv
