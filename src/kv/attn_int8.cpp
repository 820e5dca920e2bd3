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
#include <type_traits>

#include "turboquant/half.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TQ_INT8_X86 1
#else
#define TQ_INT8_X86 0
#endif

namespace tq::kv {

bool int8_scores_fit(int bits, int m) { return bits >= 1 && bits <= 4 && m > 0 && m % 32 == 0; }

#if TQ_INT8_X86
namespace {
// AVX-512 F, BW and VBMI, which both int8 paths need, unless TQ_KV_NO_INT8 turns them off.
bool avx512_base() {
  const char* e = std::getenv("TQ_KV_NO_INT8");
  if (e && *e && *e != '0') return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi");
}
}  // namespace
#endif

bool int8_scores_available() {
#if TQ_INT8_X86
  static const bool ok = avx512_base() && __builtin_cpu_supports("avx512vnni");
  return ok;
#else
  return false;
#endif
}

bool bf16_values_available() {
#if TQ_INT8_X86
  static const bool ok = avx512_base() && __builtin_cpu_supports("avx512bf16");
  return ok;
#else
  return false;
#endif
}

Bf16Table make_bf16_table(int bits, const float* table) {
  Bf16Table t{};
  for (int i = 0; i < 32; ++i) t.lut[i] = float_to_bf16(table[i & ((1 << bits) - 1)]);
  return t;
}

Int8Table make_int8_table(int bits, const float* table) {
  Int8Table t{};
  const int k = 1 << bits;
  float mx = 0;
  for (int i = 0; i < k; ++i) mx = std::max(mx, std::fabs(table[i]));
  // The smallest step (max|c|/127) is not always the best: a slightly larger one can put every
  // centroid closer to a multiple of it. Pick the step with the least squared rounding error.
  t.cs = mx > 0 ? mx / 127.f : 1.f;
  double best = 1e300;
  for (int k2 = 0; mx > 0 && k2 <= 400; ++k2) {
    const float cs = mx / (127.f - 0.1f * float(k2));  // 127 .. 87 steps for the largest
    double e = 0;
    for (int i = 0; i < k; ++i) {
      const double d = table[i] - cs * std::nearbyint(table[i] / cs);
      e += d * d;
    }
    if (e < best) {
      best = e;
      t.cs = cs;
    }
  }
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

// ---- bf16 value accumulation --------------------------------------------------------------------
//
// Register layout for 16 coordinates c0..c0+15 of a group and a token pair (A, B): dword lane L is
// coordinate c0 + L, its byte 0 A's code and byte 2 B's code (vpermw reads the low 5 bits of each
// word: word 2L = A's centroid, 2L+1 = B's, the pair vdpbf16ps multiplies with (w_A, w_B)). Qword
// Q (coordinates cc = c0 + 2Q, cc + 1) gets from vpermi2b the bytes holding both codes' bits:
//   byte 0: A's low plane byte, 1: A's 1-bit plane byte (3 bits), 2 and 3: the same of B.
namespace tq::kv {
namespace {
#if TQ_INT8_X86
#define TQ_BF16_ATTR __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vbmi")))

// Byte (within the group) and bit of code c's low-plane bits, and of its 1-bit plane bit.
void code_pos(int bits, int c, int& lo_byte, int& lo_bit, int& hi_byte, int& hi_bit) {
  const int p = 4 * ((c >> 1) & 7) + 2 * (c >> 4) + (c & 1);  // 1-bit plane position
  hi_byte = hi_bit = 0;
  if (bits == 4) {
    lo_byte = c >> 1;  // nibble c of 16 bytes: byte 4(c>>3) + ((c&7)>>1) = c >> 1
    lo_bit = 4 * (c & 1);
  } else if (bits == 1) {
    lo_byte = p >> 3;
    lo_bit = p & 7;
  } else {
    lo_byte = c >> 2;
    lo_bit = 2 * (c & 3);
    hi_byte = 8 + (p >> 3);
    hi_bit = p & 7;
  }
}

template <int B>
struct Bf16Ctl {
  static constexpr int GB = 4 * B, CG = 64 / GB < 16 ? 64 / GB : 16;
  // idx[gi][h]: vpermi2b index for group gi of the loaded chunk, half h (c0 = 16h);
  // lo[h] / hi[h]: vpmultishiftqb controls.
  alignas(64) uint8_t idx[CG][2][64], lo[2][64], hi[2][64];
  Bf16Ctl() {
    for (int h = 0; h < 2; ++h)
      for (int i = 0; i < 64; ++i) {
        const int Q = i >> 3, ob = i & 7;
        const int cc = 16 * h + 2 * Q;
        int lb, lbit, hb, hbit;
        // source bytes of the qword: 0 A lo, 1 A hi, 2 B lo, 3 B hi (the rest repeat byte 0)
        const int slot = ob < 4 ? ob : 0;
        code_pos(B, cc, lb, lbit, hb, hbit);
        for (int gi = 0; gi < CG; ++gi) idx[gi][h][i] = uint8_t(64 * (slot >> 1) + GB * gi + ((slot & 1) ? hb : lb));
        // output byte ob: token (ob>>1)&1, coordinate cc + (ob>>2); odd bytes are ignored
        const int tok = (ob >> 1) & 1, d = ob >> 2;
        code_pos(B, cc + d, lb, lbit, hb, hbit);
        lo[h][i] = uint8_t(16 * tok + lbit);
        hi[h][i] = uint8_t((8 * (2 * tok + 1) + hbit - 2) & 63);
      }
  }
};

template <int B, int RT, int P>
TQ_BF16_ATTR void acc_pass_bf16(const TokenRun& tr, size_t off, __m512i lut, const uint32_t* wp, size_t ld_p,
                                float* acc, size_t ld_a, int c0) {
  // P columns of 16 coordinates from coordinate c0 (a multiple of 16; P*16 coordinates lie in
  // at most CG consecutive groups starting at group c0/32).
  static const Bf16Ctl<B> ctl;
  constexpr int GB = 4 * B;
  const int g0 = c0 / 32, h0 = (c0 / 16) & 1;
  const int ngroups = (h0 + P + 1) / 2;
  const __mmask64 lm = ngroups * GB >= 64 ? ~__mmask64(0) : (__mmask64(1) << (ngroups * GB)) - 1;
  const __m512i mask3 = _mm512_set1_epi8(3);
  __m512 a[RT][P];
  for (int r = 0; r < RT; ++r)
    for (int p = 0; p < P; ++p) a[r][p] = _mm512_loadu_ps(acc + r * ld_a + c0 + 16 * p);
  Cur cur(tr, off + size_t(GB) * g0);
  const int n = tr.n;
  for (int t = 0; t < n; t += 2) {
    const bool two = t + 1 < n;
    const uint8_t* ca = cur.next();
    const uint8_t* cb = two ? cur.next() : ca;
    const __m512i xa = _mm512_maskz_loadu_epi8(lm, ca), xb = _mm512_maskz_loadu_epi8(lm, cb);
    __m512i wv[RT];
    for (int r = 0; r < RT; ++r) wv[r] = _mm512_set1_epi32(int(wp[r * ld_p + size_t(t / 2)]));
    for (int p = 0; p < P; ++p) {
      const int h = (h0 + p) & 1, gi = (h0 + p) >> 1;
      const __m512i x = _mm512_permutex2var_epi8(xa, _mm512_load_si512(ctl.idx[gi][h]), xb);
      __m512i v = _mm512_multishift_epi64_epi8(_mm512_load_si512(ctl.lo[h]), x);
      if constexpr (B == 3)
        v = _mm512_ternarylogic_epi32(mask3, v, _mm512_multishift_epi64_epi8(_mm512_load_si512(ctl.hi[h]), x), 0xCA);
      const __m512i c = _mm512_permutexvar_epi16(v, lut);
      for (int r = 0; r < RT; ++r) a[r][p] = _mm512_dpbf16_ps(a[r][p], (__m512bh)c, (__m512bh)wv[r]);
    }
  }
  for (int r = 0; r < RT; ++r)
    for (int p = 0; p < P; ++p) _mm512_storeu_ps(acc + r * ld_a + c0 + 16 * p, a[r][p]);
}

template <int B, int RT>
TQ_BF16_ATTR void acc_rows_bf16(int m, const TokenRun& tr, size_t off, const Bf16Table& tab, const float* w,
                                size_t ld_w, float* acc, size_t ld_a) {
  constexpr int P = RT == 4 ? 4 : 8;  // 16 accumulators; a pass's groups fit one 64-byte load
  constexpr int PM = (64 / (4 * B)) * 2 < P ? (64 / (4 * B)) * 2 : P;
  const __m512i lut = _mm512_loadu_si512(tab.lut);
  // The weights as bf16 pairs (w_t, w_t+1) per dword, once per call (an odd count pairs the last
  // token with a zero weight).
  const int n = tr.n, np = (n + 1) / 2;
  const size_t ld_p = size_t(np + 15) / 16 * 16;
  alignas(64) uint32_t wp[RT * 160];  // n <= 256 per call in the engine; larger runs use the heap
  std::vector<uint32_t> heap;
  uint32_t* p = wp;
  if (size_t(RT) * ld_p > sizeof(wp) / 4) {
    heap.resize(size_t(RT) * ld_p);
    p = heap.data();
  }
  for (int r = 0; r < RT; ++r)
    for (int t = 0; t < n; t += 32) {
      const int k = std::min(32, n - t);
      const __mmask16 m0 = __mmask16(k >= 16 ? 0xFFFF : (1u << k) - 1), m1 = __mmask16(k >= 32 ? 0xFFFF : k > 16 ? (1u << (k - 16)) - 1 : 0);
      const __m512 lo = _mm512_maskz_loadu_ps(m0, w + r * ld_w + t), hi = _mm512_maskz_loadu_ps(m1, w + r * ld_w + t + 16);
      _mm512_storeu_si512(p + r * ld_p + size_t(t / 2), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  int c0 = 0;
  for (; c0 + 16 * PM <= m; c0 += 16 * PM) acc_pass_bf16<B, RT, PM>(tr, off, lut, p, ld_p, acc, ld_a, c0);
  for (; c0 < m; c0 += 16) acc_pass_bf16<B, RT, 1>(tr, off, lut, p, ld_p, acc, ld_a, c0);
}
#endif
}  // namespace

void acc_codes_bf16(int bits, int m, const TokenRun& tr, size_t off, const Bf16Table& tab, const float* w, size_t ld_w,
                    int R, float* acc, size_t ld_a) {
  if (tr.n <= 0) return;
#if TQ_INT8_X86
  auto rows = [&](auto bc) {
    constexpr int B = decltype(bc)::value;
    int r = 0;
    for (; R - r >= 4; r += 4) acc_rows_bf16<B, 4>(m, tr, off, tab, w + r * ld_w, ld_w, acc + r * ld_a, ld_a);
    for (; R - r >= 2; r += 2) acc_rows_bf16<B, 2>(m, tr, off, tab, w + r * ld_w, ld_w, acc + r * ld_a, ld_a);
    for (; r < R; ++r) acc_rows_bf16<B, 1>(m, tr, off, tab, w + r * ld_w, ld_w, acc + r * ld_a, ld_a);
  };
  switch (bits) {
    case 1: return rows(std::integral_constant<int, 1>{});
    case 2: return rows(std::integral_constant<int, 2>{});
    case 3: return rows(std::integral_constant<int, 3>{});
    case 4: return rows(std::integral_constant<int, 4>{});
    default: break;
  }
#endif
  (void)bits, (void)m, (void)off, (void)tab, (void)w, (void)ld_w, (void)R, (void)acc, (void)ld_a;
}

}  // namespace tq::kv
