// src/index/fast_scan_hwy.cpp — nibble-table scan with runtime dispatch (Highway).
//
// One SIMD step handles 16 * B bytes = B columns (B = vector bytes / 16: 1 on SSE4, 2 on AVX2,
// 4 on AVX-512) for 32 vectors: the low and high nibbles index the B 16-entry tables with one byte
// shuffle each (the shuffle works per 128-bit block, one column per block). Byte results are
// summed in 16-bit lanes split into even/odd vectors (mask / shift of the u16 view), which is exact
// while a lane has seen <= 257 values of <= 255; columns are processed in chunks of 256 and each
// chunk's lanes are reduced into 32-bit totals. Floor per block and column: 16 bytes of codes and
// 16 of table read (tables stay in L1), 2 shuffles + 6 integer ops per 16 B bytes.
#include <cstddef>
#include <cstdint>

#include "index/fast_scan.h"
#include "index/scan_layout.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "index/fast_scan_hwy.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace tq::index {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR
// Sums the 128-bit blocks of v: lane j of the result = sum over blocks L of lane L*8 + j.
template <class D, class V>
HWY_INLINE auto FoldBlocks(D d, V v) {
  if constexpr (hn::MaxLanes(D()) * sizeof(hn::TFromD<D>) > 16) {
    const hn::Half<D> dh;
    return FoldBlocks(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  } else {
    (void)d;
    return v;
  }
}

#endif

void ScanNibbles(const uint8_t* HWY_RESTRICT blocks, size_t n_blocks, size_t block_bytes, int c0, int c1,
                 const uint8_t* HWY_RESTRICT lut, uint32_t* HWY_RESTRICT acc) {
#if HWY_TARGET == HWY_SCALAR
  scan_nibbles_ref(blocks, n_blocks, block_bytes, c0, c1, lut, acc);
#else
  const hn::ScalableTag<uint8_t> d8;
  const hn::Repartition<uint16_t, decltype(d8)> d16;
  const size_t N8 = hn::Lanes(d8);
  const int B = int(N8 / 16);  // columns per step
  if (B < 1 || (c1 - c0) % B != 0 || c0 % B != 0) {
    scan_nibbles_ref(blocks, n_blocks, block_bytes, c0, c1, lut, acc);
    return;
  }
  const auto lo_mask = hn::Set(d8, uint8_t(0x0F));
  const auto byte_mask = hn::Set(d16, uint16_t(0x00FF));
  HWY_ALIGN uint16_t tmp[kBlock];
  for (size_t b = 0; b < n_blocks; ++b) {
    const uint8_t* blk = blocks + b * block_bytes;
    uint32_t* out = acc + b * kBlock;
    for (int cs = c0; cs < c1; cs += 256) {
      const int ce = cs + 256 < c1 ? cs + 256 : c1;
      auto le = hn::Zero(d16), lo = hn::Zero(d16), he = hn::Zero(d16), ho = hn::Zero(d16);
      for (int c = cs; c < ce; c += B) {
        const auto codes = hn::LoadU(d8, blk + size_t(c) * 16);
        const auto table = hn::LoadU(d8, lut + size_t(c) * 16);
        const auto rl = hn::BitCast(d16, hn::TableLookupBytes(table, hn::And(codes, lo_mask)));
        const auto rh = hn::BitCast(d16, hn::TableLookupBytes(table, hn::ShiftRight<4>(codes)));
        le = hn::Add(le, hn::And(rl, byte_mask));
        lo = hn::Add(lo, hn::ShiftRight<8>(rl));
        he = hn::Add(he, hn::And(rh, byte_mask));
        ho = hn::Add(ho, hn::ShiftRight<8>(rh));
      }
      // Fold the B column slots, then interleave even/odd vectors into vector order 0..15.
      const auto fe = FoldBlocks(d16, le), fo = FoldBlocks(d16, lo);
      const auto ge = FoldBlocks(d16, he), go = FoldBlocks(d16, ho);
      const hn::DFromV<decltype(fe)> d128;
      hn::StoreU(hn::InterleaveLower(d128, fe, fo), d128, tmp);
      hn::StoreU(hn::InterleaveUpper(d128, fe, fo), d128, tmp + 8);
      hn::StoreU(hn::InterleaveLower(d128, ge, go), d128, tmp + 16);
      hn::StoreU(hn::InterleaveUpper(d128, ge, go), d128, tmp + 24);
      for (int t = 0; t < kBlock; ++t) out[t] += tmp[t];
    }
  }
#endif
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace tq::index
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tq::index {
HWY_EXPORT(ScanNibbles);
HWY_EXPORT(TargetName);
void scan_nibbles(const uint8_t* blocks, size_t n_blocks, size_t block_bytes, int c0, int c1, const uint8_t* lut,
                  uint32_t* acc) {
  HWY_DYNAMIC_DISPATCH(ScanNibbles)(blocks, n_blocks, block_bytes, c0, c1, lut, acc);
}
const char* scan_target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }
}  // namespace tq::index
#endif
