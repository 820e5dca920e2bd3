// src/kv/attn_alt_kernels_hwy.cpp — the lookup-table alternatives of attn_alt_kernels.h, measured
// against the production kernels; per Highway target with runtime dispatch like them.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/attn_alt_kernels_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <vector>

#include "kv/attn_alt_kernels.h"
#include "kv/code_unpack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace tq::kv::HWY_NAMESPACE {

bool LutGatherSupportedImpl(int bits, int m) { return TQ_KV_LANES16 && bits >= 1 && bits <= 4 && m % 32 == 0 && m > 0; }

// Per row a table of 16 entries per coordinate (kernel order): T[pos*16 + i] = q[pos] * t16[i],
// t16 the 16-entry arrangement the unpacked indices address. A token's score is then the sum of
// one table entry per coordinate: a gather per 16 coordinates and row, no multiply.
void DotLutGatherImpl(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* q,
                      size_t ld_q, int R, float* s, size_t ld_s) {
#if TQ_KV_LANES16
  const D16 df;
  const DU32 du;
  const Shifts k;
  alignas(64) float t16[16];
  Table16(bits, table, t16);
  std::vector<float> lut(size_t(R) * size_t(m) * 16);
  for (int r = 0; r < R; ++r)
    for (int pos = 0; pos < m; ++pos)
      for (int i = 0; i < 16; ++i) lut[(size_t(r) * m + pos) * 16 + i] = q[r * ld_q + pos] * t16[i];
  alignas(64) int32_t lane_base[16];
  for (int l = 0; l < 16; ++l) lane_base[l] = 16 * l;
  const auto base = hn::BitCast(du, hn::Load(hn::Full512<int32_t>(), lane_base));
  const hn::Full512<int32_t> di;
  const int groups = m / 32;
  Cursor cur(tr, off);
  for (int t = 0; t < tr.n; ++t, cur.next()) {
    const uint8_t* c = cur.get();
    for (int r = 0; r < R; ++r) {
      const float* T = lut.data() + size_t(r) * m * 16;
      VF acc = hn::Zero(df);
      for (int g = 0; g < groups; ++g) {
        VU i0, i1;
        switch (bits) {
          case 1: Unpack<1>(c + 4 * g, k, i0, i1); break;
          case 2: Unpack<2>(c + 8 * g, k, i0, i1); break;
          case 3: Unpack<3>(c + 12 * g, k, i0, i1); break;
          default: Unpack<4>(c + 16 * g, k, i0, i1); break;
        }
        const auto x0 = hn::BitCast(di, hn::Add(hn::And(i0, hn::Set(du, 15u)), base));
        const auto x1 = hn::BitCast(di, hn::Add(hn::And(i1, hn::Set(du, 15u)), base));
        acc = hn::Add(acc, hn::GatherIndex(df, T + 32 * 16 * g, x0));
        acc = hn::Add(acc, hn::GatherIndex(df, T + 32 * 16 * g + 16 * 16, x1));
      }
      s[r * ld_s + t] = hn::GetLane(hn::SumOfLanes(df, acc));
    }
  }
#else
  (void)bits, (void)m, (void)tr, (void)off, (void)table, (void)q, (void)ld_q, (void)R, (void)s, (void)ld_s;
#endif
}

// Histogram V: H[r][i][code] += w[r][t] for every token and coordinate (natural order), then
// acc[r][i] += Σ_j table[j] H[r][i][j]: 2^bits multiplies per coordinate and row, once.
void AccHistogramImpl(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* w,
                      size_t ld_w, int R, float* acc, size_t ld_a) {
  const int L = 1 << bits;
  std::vector<float> H(size_t(R) * m * L, 0.f);
  std::vector<uint8_t> idx(static_cast<size_t>(m));
  Cursor cur(tr, off);
  for (int t = 0; t < tr.n; ++t, cur.next()) {
    unpack_codes(cur.get(), uint32_t(m), bits, idx.data());
    for (int r = 0; r < R; ++r) {
      const float wt = w[r * ld_w + t];
      float* h = H.data() + size_t(r) * m * L;
      for (int i = 0; i < m; ++i) h[i * L + idx[size_t(i)]] += wt;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < m; ++i) {
      double v = 0;
      for (int j = 0; j < L; ++j) v += double(table[j]) * H[(size_t(r) * m + i) * L + j];
      acc[r * ld_a + i] += float(v);
    }
}

}  // namespace tq::kv::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tq::kv {

HWY_EXPORT(LutGatherSupportedImpl);
HWY_EXPORT(DotLutGatherImpl);
HWY_EXPORT(AccHistogramImpl);

bool lut_gather_supported(int bits, int m) { return HWY_DYNAMIC_DISPATCH(LutGatherSupportedImpl)(bits, m); }
void dot_codes_lut_gather(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* q,
                          size_t ld_q, int R, float* s, size_t ld_s) {
  HWY_DYNAMIC_DISPATCH(DotLutGatherImpl)(bits, m, tr, off, table, q, ld_q, R, s, ld_s);
}
void acc_codes_histogram(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* w,
                         size_t ld_w, int R, float* acc, size_t ld_a) {
  HWY_DYNAMIC_DISPATCH(AccHistogramImpl)(bits, m, tr, off, table, w, ld_w, R, acc, ld_a);
}

}  // namespace tq::kv
#endif  // HWY_ONCE
