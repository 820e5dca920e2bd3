// src/index/scan_layout.h — how FlatIndex keeps codes for scanning.
//
// Vectors are stored in blocks of 32 (kBlock). Two layouts:
//  * nibble (every part has <= 4 bits): each vector's rotated coordinates are grouped into 4-bit
//    "columns" holding k = 4 / bits coordinates (bits 4: 1, 2: 2, 1: 4, 3: 1 with 8 of 16 values
//    used); column value = sum_u code[first + c*k + u] << (u * bits). A block stores, per column c,
//    16 bytes: byte t (0..15) = column value of vector t (low nibble) | of vector t+16 (high
//    nibble) — the operand of one 16-entry byte shuffle per column for 32 vectors. Each part's
//    columns are padded to a multiple of 4 (zero codes, zero table rows) so that 128/256/512-bit
//    steps never straddle parts.
//  * byte (some part has 5..8 bits): a block is 32 rows of d code bytes (rotated order).
// Bytes per vector: nibble = 8 * ncols / 16 ... i.e. ncols / 2 (+ padding), byte = d.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "turboquant/layout.h"

namespace tq::index {

inline constexpr int kBlock = 32;
inline constexpr int kColAlign = 4;  // columns per part padded to this (512-bit step = 4 columns)

struct ScanPart {
  int first = 0, dim = 0, bits = 0;
  int per_col = 1;     // coordinates per column
  int col0 = 0;        // first column of the part
  int ncols = 0;       // columns used (ceil(dim / per_col))
  int ncols_pad = 0;   // ncols rounded up to kColAlign
};

struct ScanGeometry {
  int d = 0, n_parts = 0;
  bool nibble = true;
  ScanPart part[kMaxParts];
  int ncols = 0;  // total padded columns (nibble layout)
  size_t block_bytes() const { return nibble ? size_t(ncols) * 16 : size_t(kBlock) * size_t(d); }
  static ScanGeometry make(const TqLayout& L);
};

// Writes vectors [0, n) of unpacked codes (n x d, rotated order) into slots [slot0, slot0 + n) of
// `blocks` (which must hold those slots). Bytes of other slots are kept.
void pack_into_blocks(const ScanGeometry& g, const uint8_t* codes, size_t n, size_t slot0, uint8_t* blocks);
// Reads the unpacked codes (d bytes, rotated order) of one slot.
void unpack_slot(const ScanGeometry& g, const uint8_t* blocks, size_t slot, uint8_t* codes);
// Column value (0..15) of a slot's column c (nibble layout).
inline uint32_t slot_column(const ScanGeometry& g, const uint8_t* blocks, size_t slot, int c) {
  const uint8_t byte = blocks[(slot / kBlock) * g.block_bytes() + size_t(c) * 16 + (slot % 16)];
  return (slot % kBlock) < 16 ? (byte & 15u) : (byte >> 4);
}

// acc[b * 32 + t] = sum over columns c in [c0, c1) of lut[c * 16 + column value of vector t of
// block b], for blocks [0, n_blocks). Scalar reference of scan_nibbles (fast_scan.h).
void scan_nibbles_ref(const uint8_t* blocks, size_t n_blocks, size_t block_bytes, int c0, int c1,
                      const uint8_t* lut, uint32_t* acc);

}  // namespace tq::index
