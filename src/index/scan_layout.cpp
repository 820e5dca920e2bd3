// src/index/scan_layout.cpp — geometry of the scan layouts, packing into / out of blocks, and the
// scalar reference of the nibble scan.
#include "index/scan_layout.h"

#include <cstring>

namespace tq::index {

ScanGeometry ScanGeometry::make(const TqLayout& L) {
  ScanGeometry g;
  g.d = int(L.dim);
  g.n_parts = int(L.n_parts);
  int col = 0;
  for (int p = 0; p < g.n_parts; ++p) {
    ScanPart& s = g.part[p];
    s.first = int(L.part[p].first);
    s.dim = int(L.part[p].dim);
    s.bits = int(L.part[p].mse_bits);
    if (s.bits > 4) g.nibble = false;
    s.per_col = (s.bits == 1 || s.bits == 2 || s.bits == 4) ? 4 / s.bits : 1;
    s.ncols = (s.dim + s.per_col - 1) / s.per_col;
    s.ncols_pad = (s.ncols + kColAlign - 1) / kColAlign * kColAlign;
    s.col0 = col;
    col += s.ncols_pad;
  }
  g.ncols = col;
  return g;
}

namespace {
inline uint32_t column_value(const ScanPart& s, const uint8_t* codes, int c) {
  uint32_t v = 0;
  for (int u = 0; u < s.per_col; ++u) {
    const int i = c * s.per_col + u;
    if (i < s.dim) v |= uint32_t(codes[s.first + i]) << (u * s.bits);
  }
  return v;
}
}  // namespace

void pack_into_blocks(const ScanGeometry& g, const uint8_t* codes, size_t n, size_t slot0, uint8_t* blocks) {
  const size_t bb = g.block_bytes();
  if (!g.nibble) {
    for (size_t i = 0; i < n; ++i) {
      const size_t slot = slot0 + i;
      std::memcpy(blocks + (slot / kBlock) * bb + (slot % kBlock) * size_t(g.d), codes + i * g.d, size_t(g.d));
    }
    return;
  }
  size_t i = 0;
  // Whole blocks: per column, 16 bytes each made of two vectors' values (a 32 x ncols transpose).
  if (slot0 % kBlock == 0) {
    for (; i + kBlock <= n; i += kBlock) {
      uint8_t* blk = blocks + ((slot0 + i) / kBlock) * bb;
      const uint8_t* c0 = codes + i * size_t(g.d);
      for (int p = 0; p < g.n_parts; ++p) {
        const ScanPart& s = g.part[p];
        uint8_t* out = blk + size_t(s.col0) * 16;
        if (s.per_col == 1) {
          for (int c = 0; c < s.ncols; ++c)
            for (int t = 0; t < 16; ++t)
              out[size_t(c) * 16 + t] = uint8_t(c0[size_t(t) * g.d + s.first + c] |
                                                (c0[size_t(t + 16) * g.d + s.first + c] << 4));
        } else {
          for (int c = 0; c < s.ncols; ++c)
            for (int t = 0; t < 16; ++t)
              out[size_t(c) * 16 + t] = uint8_t(column_value(s, c0 + size_t(t) * g.d, c) |
                                                (column_value(s, c0 + size_t(t + 16) * g.d, c) << 4));
        }
        std::memset(out + size_t(s.ncols) * 16, 0, size_t(s.ncols_pad - s.ncols) * 16);
      }
    }
  }
  for (; i < n; ++i) {
    const size_t slot = slot0 + i;
    uint8_t* col_bytes = blocks + (slot / kBlock) * bb + (slot % 16);
    const bool high = (slot % kBlock) >= 16;
    const uint8_t* ci = codes + i * size_t(g.d);
    for (int p = 0; p < g.n_parts; ++p) {
      const ScanPart& s = g.part[p];
      for (int c = 0; c < s.ncols_pad; ++c) {
        const uint32_t v = c < s.ncols ? column_value(s, ci, c) : 0u;
        uint8_t& byte = col_bytes[size_t(s.col0 + c) * 16];
        byte = high ? uint8_t((byte & 0x0F) | (v << 4)) : uint8_t((byte & 0xF0) | v);
      }
    }
  }
}

void unpack_slot(const ScanGeometry& g, const uint8_t* blocks, size_t slot, uint8_t* codes) {
  if (!g.nibble) {
    std::memcpy(codes, blocks + (slot / kBlock) * g.block_bytes() + (slot % kBlock) * size_t(g.d), size_t(g.d));
    return;
  }
  for (int p = 0; p < g.n_parts; ++p) {
    const ScanPart& s = g.part[p];
    const uint32_t mask = (1u << s.bits) - 1u;
    for (int c = 0; c < s.ncols; ++c) {
      const uint32_t v = slot_column(g, blocks, slot, s.col0 + c);
      for (int u = 0; u < s.per_col; ++u) {
        const int i = c * s.per_col + u;
        if (i < s.dim) codes[s.first + i] = uint8_t((v >> (u * s.bits)) & mask);
      }
    }
  }
}

void scan_nibbles_ref(const uint8_t* blocks, size_t n_blocks, size_t block_bytes, int c0, int c1,
                      const uint8_t* lut, uint32_t* acc) {
  for (size_t b = 0; b < n_blocks; ++b) {
    const uint8_t* blk = blocks + b * block_bytes;
    for (int t = 0; t < kBlock; ++t) {
      uint32_t s = 0;
      for (int c = c0; c < c1; ++c) {
        const uint8_t byte = blk[size_t(c) * 16 + (t % 16)];
        s += lut[size_t(c) * 16 + (t < 16 ? (byte & 15) : (byte >> 4))];
      }
      acc[b * kBlock + t] = s;
    }
  }
}

}  // namespace tq::index
