// src/core/encode_kernels_hwy.cpp — Highway versions of encode_kernels.h with runtime dispatch.
//
// matmul_rows: register tile of R rows x NV vectors of columns (4 x 4 on every target: 16
// accumulators), the transposed matrix streamed one row (of mt) at a time, x broadcast. Columns are
// the outer loop so one strip of mt (d x 4 vectors) stays in cache while all rows pass over it.
// Per output element the operation sequence is fixed (fma over j ascending), so the result is the
// same for any batch split; targets without FMA (SSE4 and below) round twice and give other bytes —
// determinism is per machine, which is what the index and the tests rely on.
// quantize: up to 15 bounds (b <= 4) a branch-free count of bounds below x; above that a binary
// search with gathers. Both equal Codebook::quantize exactly (integer results, no rounding).
#include <cstddef>
#include <cstdint>

#include "core/encode_kernels.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/encode_kernels_hwy.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace tq::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <int R, int NV>
HWY_INLINE void Tile(const float* HWY_RESTRICT x, size_t sx, const float* HWY_RESTRICT mt, int d, size_t ldm,
                     float* HWY_RESTRICT y, size_t sy, size_t c0) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  using V = hn::Vec<decltype(df)>;
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < NV; ++k) acc[r][k] = hn::Zero(df);
  for (int j = 0; j < d; ++j) {
    const float* row = mt + size_t(j) * ldm + c0;
    V b[NV];
    for (int k = 0; k < NV; ++k) b[k] = hn::LoadU(df, row + k * N);
    for (int r = 0; r < R; ++r) {
      const V a = hn::Set(df, x[r * sx + j]);
      for (int k = 0; k < NV; ++k) acc[r][k] = hn::MulAdd(a, b[k], acc[r][k]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < NV; ++k) hn::StoreU(acc[r][k], df, y + r * sy + c0 + k * N);
}

template <int R>
HWY_INLINE void RowStrip(const float* x, size_t sx, const float* mt, int d, size_t ldm, float* y, size_t sy,
                         size_t c0, size_t nv) {
  switch (nv) {
    case 4: Tile<R, 4>(x, sx, mt, d, ldm, y, sy, c0); break;
    case 3: Tile<R, 3>(x, sx, mt, d, ldm, y, sy, c0); break;
    case 2: Tile<R, 2>(x, sx, mt, d, ldm, y, sy, c0); break;
    default: Tile<R, 1>(x, sx, mt, d, ldm, y, sy, c0); break;
  }
}

void MatmulRows(const float* x, size_t rows, size_t sx, const float* mt, int d, float* y, size_t sy) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  const size_t ldm = size_t(padded_cols(d));
  for (size_t c0 = 0; c0 < ldm; c0 += 4 * N) {
    const size_t nv = (ldm - c0) / N < 4 ? (ldm - c0) / N : 4;
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) RowStrip<4>(x + r * sx, sx, mt, d, ldm, y + r * sy, sy, c0, nv);
    for (; r < rows; ++r) RowStrip<1>(x + r * sx, sx, mt, d, ldm, y + r * sy, sy, c0, nv);
  }
}

void Quantize(const float* HWY_RESTRICT x, size_t n, const float* HWY_RESTRICT bounds, int n_bounds,
              uint8_t* HWY_RESTRICT codes) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<uint8_t, decltype(di)> du8;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  if (n_bounds <= 15 && hn::Lanes(df) == 16) {
    // 16 lanes (AVX-512): the bounds fit one register; binary search with in-register lookups
    // (log2 levels steps of permute + compare + select instead of n_bounds compares).
    HWY_ALIGN float tb[16];
    for (int t = 0; t < 16; ++t) tb[t] = t < n_bounds ? bounds[t] : HWY_MAX(bounds[n_bounds - 1], 0.f) * 2 + 1;
    const auto table = hn::Load(df, tb);
    const int levels = n_bounds + 1;
    for (; i + N <= n; i += N) {
      const auto v = hn::LoadU(df, x + i);
      auto idx = hn::Zero(di);
      for (int step = levels / 2; step >= 1; step >>= 1) {
        const auto cand = hn::Add(idx, hn::Set(di, step));
        const auto t = hn::TableLookupLanes(table, hn::IndicesFromVec(df, hn::Sub(cand, hn::Set(di, 1))));
        idx = hn::IfThenElse(hn::RebindMask(di, hn::Gt(v, t)), cand, idx);
      }
      hn::StoreU(hn::DemoteTo(du8, idx), du8, codes + i);
    }
  }
#endif
  if (n_bounds <= 15) {
    for (; i + N <= n; i += N) {
      const auto v = hn::LoadU(df, x + i);
      auto cnt = hn::Zero(di);
      for (int t = 0; t < n_bounds; ++t)  // mask as all-ones (-1) per lane: subtract
        cnt = hn::Sub(cnt, hn::VecFromMask(di, hn::RebindMask(di, hn::Gt(v, hn::Set(df, bounds[t])))));
      hn::StoreU(hn::DemoteTo(du8, cnt), du8, codes + i);
    }
  } else {
    const int levels = n_bounds + 1;
    for (; i + N <= n; i += N) {
      const auto v = hn::LoadU(df, x + i);
      auto idx = hn::Zero(di);
      for (int step = levels / 2; step >= 1; step >>= 1) {
        const auto cand = hn::Add(idx, hn::Set(di, step));
        const auto t = hn::GatherIndex(df, bounds, hn::Sub(cand, hn::Set(di, 1)));
        idx = hn::IfThenElse(hn::RebindMask(di, hn::Gt(v, t)), cand, idx);
      }
      hn::StoreU(hn::DemoteTo(du8, idx), du8, codes + i);
    }
  }
  for (; i < n; ++i) {  // tail: the same count, one value at a time
    int c = 0;
    for (int t = 0; t < n_bounds; ++t) c += x[i] > bounds[t] ? 1 : 0;
    codes[i] = uint8_t(c);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace tq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tq::kernels {
HWY_EXPORT(MatmulRows);
HWY_EXPORT(Quantize);

void matmul_rows(const float* x, size_t rows, size_t sx, const float* mt, int d, float* y, size_t sy) {
  HWY_DYNAMIC_DISPATCH(MatmulRows)(x, rows, sx, mt, d, y, sy);
}
void quantize(const float* x, size_t n, const float* bounds, int n_bounds, uint8_t* codes) {
  HWY_DYNAMIC_DISPATCH(Quantize)(x, n, bounds, n_bounds, codes);
}
}  // namespace tq::kernels
#endif  // HWY_ONCE
