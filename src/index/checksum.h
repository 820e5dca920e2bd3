// src/index/checksum.h — the FNV-1a 64-bit checksum that closes every index file (index_io.cpp);
// shared with the fuzz target, which fixes it up so that mutated files reach the parser.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tq::index_file {

inline uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace tq::index_file
