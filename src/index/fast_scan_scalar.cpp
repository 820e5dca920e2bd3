// src/index/fast_scan_scalar.cpp — without Highway the nibble scan is the scalar reference.
#ifndef TQ_HAVE_HWY
#include "index/fast_scan.h"
#include "index/scan_layout.h"

namespace tq::index {
void scan_nibbles(const uint8_t* blocks, size_t n_blocks, size_t block_bytes, int c0, int c1, const uint8_t* lut,
                  uint32_t* acc) {
  scan_nibbles_ref(blocks, n_blocks, block_bytes, c0, c1, lut, acc);
}
const char* scan_target_name() { return "scalar (built without Highway)"; }
}  // namespace tq::index
#endif
