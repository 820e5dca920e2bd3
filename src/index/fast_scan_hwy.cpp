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
  for (size_t b = 0; b < n_blocks; ++b) {
    const uint8_t* blk = blocks + b * block_bytes;
    uint32_t* out = acc + b * kBlock;
    for (int cs = c0; cs < c1; cs += 256) {
      const int ce = cs + 256 < c1 ? cs + 256 : c1;
      // Per u16 lane: a = sum of (even + 256 * odd) mod 2^16, b = sum of odd (faiss's trick: one
      // op less per result than masking the even bytes).
      auto la = hn::Zero(d16), lb = hn::Zero(d16), ha = hn::Zero(d16), hb = hn::Zero(d16);
      for (int c = cs; c < ce; c += B) {
        const auto codes = hn::LoadU(d8, blk + size_t(c) * 16);
        const auto table = hn::LoadU(d8, lut + size_t(c) * 16);
        const auto rl = hn::BitCast(d16, hn::TableLookupBytes(table, hn::And(codes, lo_mask)));
        const auto rh = hn::BitCast(d16, hn::TableLookupBytes(table, hn::And(hn::ShiftRight<4>(codes), lo_mask)));
        la = hn::Add(la, rl);
        lb = hn::Add(lb, hn::ShiftRight<8>(rl));
        ha = hn::Add(ha, rh);
        hb = hn::Add(hb, hn::ShiftRight<8>(rh));
      }
      // Even lanes: acc_a - 256 * acc_b (mod 2^16; exact, as the true sums fit 16 bits).
      const auto le = hn::Sub(la, hn::ShiftLeft<8>(lb)), he = hn::Sub(ha, hn::ShiftLeft<8>(hb));
      // Fold the B column slots, interleave even/odd vectors into vector order, widen to u32 in
      // registers (a store + wide reload of the u16 results stalls on store forwarding).
      const auto fe = FoldBlocks(d16, le), fo = FoldBlocks(d16, lb);
      const auto ge = FoldBlocks(d16, he), go = FoldBlocks(d16, hb);
      const hn::DFromV<decltype(fe)> d128;
      const hn::Half<decltype(d128)> d64;
      const hn::Rebind<uint32_t, decltype(d64)> d32;
      const decltype(fe) parts[4] = {hn::InterleaveLower(d128, fe, fo), hn::InterleaveUpper(d128, fe, fo),
                                     hn::InterleaveLower(d128, ge, go), hn::InterleaveUpper(d128, ge, go)};
      for (int k = 0; k < 4; ++k) {
        auto a0 = hn::PromoteTo(d32, hn::LowerHalf(d64, parts[k]));
        auto a1 = hn::PromoteTo(d32, hn::UpperHalf(d64, parts[k]));
        if (cs != c0) {
          a0 = hn::Add(a0, hn::LoadU(d32, out + 8 * k));
          a1 = hn::Add(a1, hn::LoadU(d32, out + 8 * k + 4));
        }
        hn::StoreU(a0, d32, out + 8 * k);
        hn::StoreU(a1, d32, out + 8 * k + 4);
      }
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
