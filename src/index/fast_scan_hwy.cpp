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
  HWY_ALIGN uint16_t tmp[4][64];  // 4 accumulators of up to 32 u16 lanes (512 bits)
  const size_t N16 = hn::Lanes(d16);
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
      hn::Store(le, d16, tmp[0]);
      hn::Store(lo, d16, tmp[1]);
      hn::Store(he, d16, tmp[2]);
      hn::Store(ho, d16, tmp[3]);
      // Lane layout: u16 lane L*8 + j of block (column slot) L holds vector 2j (even) / 2j+1 (odd).
      for (int j = 0; j < 8; ++j) {
        uint32_t se = 0, so = 0, he32 = 0, ho32 = 0;
        for (size_t L = 0; L < N16 / 8; ++L) {
          se += tmp[0][L * 8 + j];
          so += tmp[1][L * 8 + j];
          he32 += tmp[2][L * 8 + j];
          ho32 += tmp[3][L * 8 + j];
        }
        out[2 * j] += se;
        out[2 * j + 1] += so;
        out[16 + 2 * j] += he32;
        out[16 + 2 * j + 1] += ho32;
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
