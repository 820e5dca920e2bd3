// src/index/fast_scan.h — the SIMD table scan over nibble blocks (scan_layout.h). Highway version
// with runtime dispatch in fast_scan_hwy.cpp; without Highway the reference serves.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tq::index {

// Same contract as scan_nibbles_ref: acc[b * 32 + t] = sum_{c in [c0, c1)} lut[c*16 + value].
// c0 and c1 - c0 are multiples of kColAlign (4). Any number of columns (sums kept exact in u32).
void scan_nibbles(const uint8_t* blocks, size_t n_blocks, size_t block_bytes, int c0, int c1, const uint8_t* lut,
                  uint32_t* acc);

// Name of the instruction set the dispatcher picked (for reports).
const char* scan_target_name();

}  // namespace tq::index
