// turboquant/pack.h — fast packing/unpacking of b-bit codes in the group-plane layout of layout.h.
// Bit-identical to pack_codes_ref / unpack_code_ref (tests check every b and tail length).
#pragma once
#include <cstdint>

namespace tq {

// codes[0..d), each < 2^b  ->  out[0..packed_bytes(d, b)).
void pack_codes(const uint8_t* codes, uint32_t d, int b, uint8_t* out);
// packed[0..packed_bytes(d, b))  ->  codes[0..d).
void unpack_codes(const uint8_t* packed, uint32_t d, int b, uint8_t* codes);

}  // namespace tq
