// turboquant/baseline_codecs.h — the baseline codecs TurboQuant is compared with (issue 5), as Codec
// subclasses in the same codec table, so the KV cache, the kernels and `tq eval` take them through
// the generic encode/decode path with no copy of any kernel.
//
// Byte layouts (encoded vector = codes section, then scalars section; little-endian throughout).
// nb = ceil(d / 32) blocks of 32 consecutive coordinates; the last block may be partial.
//
//   fp8   codes  : d bytes, OCP FP8 E4M3FN (bias 7, max 448, no infinities; 0x7F/0xFF = NaN are
//                  never written) of x_i / s, round to nearest even
//         scalars: s as fp32 (4 bytes), s = max_i |x_i| / 448; zero vector: s = 0
//         bits/value = 8 + 32/d                          decode: x̂_i = s * e4m3(code_i)
//
//   q8    codes  : d bytes, int8 two's complement q_i = round(x_i / s_b), |q_i| <= 127
//         scalars: nb fp16 scales s_b = max_{i in b} |x_i| / 127 (ggml q8_0)
//         bits/value = 8 + 16*nb/d  (8.5 when 32 | d)    decode: x̂_i = s_b * q_i
//
//   q4    codes  : packed_bytes(d, 4) bytes: 4-bit fields u_i = q_i + 8 in the group-plane packing of
//                  layout.h, which for 4 bits is plain nibble order (byte j: coordinate 2j in the low
//                  nibble, 2j+1 in the high nibble). NOTE: ggml's block_q4_0 orders nibbles
//                  differently (low nibbles = first 16 values); the arithmetic is the same.
//         scalars: nb fp16 scales s_b = m_b / -8, m_b the value of largest magnitude in the block
//                  (with its sign, as ggml q4_0: the extreme value maps to -8 exactly, so all 16
//                  levels are used); q_i = clamp(round(x_i / s_b), -8, 7)
//         bits/value = 4 + 16*nb/d  (4.5 when 32 | d)    decode: x̂_i = s_b * (u_i - 8)
//
//   q8r, q4r  the q8 / q4 layout of y = R x, R = Rotation::create(kAuto, d, seed) (randomized
//         Hadamard for power-of-two d, dense Haar otherwise); decode applies R^T. Same bits/value.
//
//   kivi2 (per-token, KIVI's value quantizer; used for keys too when a per-vector codec is needed)
//         codes  : packed_bytes(d, 2) bytes, group-plane packing of layout.h, u_i in 0..3
//         scalars: per block b: fp16 scale h_b = (max_b - min_b) / 3, then fp16 zero point z_b = min_b
//                  (4 bytes per block); u_i = clamp(round((x_i - z_b) / h_b), 0, 3)
//         bits/value = 2 + 32*nb/d  (3.0 when 32 | d)    decode: x̂_i = z_b + h_b * u_i
//         KIVI proper quantizes KEYS per channel over groups of G tokens, which is not a per-vector
//         codec: kivi_quantize_per_channel() below does that (used by `tq eval`), and the fp16
//         window of the R most recent tokens is a cache policy, applied by `tq eval` too.
//
// Scale rounding: every fp16 scale is rounded to fp16 BEFORE the values are quantized with it, and
// bumped one fp16 ulp away from zero when rounding made it too small to reach the block's extreme
// value, so the quantizer error is exactly half a step of the stored scale. Consequences, as with
// ggml: a block whose extreme value is below ~1e-5 (q8; q4: ~5e-7) gets a subnormal fp16 scale and
// a coarser step; a block whose scale exceeds fp16's 65504 (q8: |x| > 8.3e6, q4: |x| > 5.2e5,
// kivi2: range > 1.9e5) is rejected with tq::Error.
#pragma once
#include <cstdint>
#include <memory>

#include "turboquant/codec.h"

namespace tq {

class Rotation;

inline constexpr int kBaselineBlock = 32;

// ---- FP8 E4M3FN (OCP 8-bit floating point, "fn" = finite + NaN, no infinities) -------------------
inline constexpr float kE4m3Max = 448.0f;
// Reference conversion, computed from the format definition (no tables).
float e4m3_to_float_ref(uint8_t code);
// Round to nearest even; |x| beyond 448 saturates to ±448; NaN input is a precondition violation.
uint8_t float_to_e4m3(float x);
// Table-driven decode (the fast path; tests compare it with the reference for all 256 codes).
float e4m3_to_float(uint8_t code);

class Fp8Codec final : public Codec {
 public:
  Fp8Codec(const CodecSpec& spec, int d);
  void encode(const float* x, size_t n, size_t stride, uint8_t* codes) const override;
  void decode(const uint8_t* codes, size_t n, float* y, size_t stride) const override;
};

// q8, q4, q8r, q4r: symmetric integer codes per block of 32 with an fp16 scale, optionally after a
// random rotation.
class BlockIntCodec final : public Codec {
 public:
  BlockIntCodec(const CodecSpec& spec, int d);
  void encode(const float* x, size_t n, size_t stride, uint8_t* codes) const override;
  // Per block: one fp16 scale conversion, then a loop the compiler vectorizes (4 bits: the nibbles
  // of layout.h's 4-bit plane are in byte order, tail included). Bit-identical to decode_reference.
  void decode(const uint8_t* codes, size_t n, float* y, size_t stride) const override;
  // The readable definition: code by code through layout.h's unpacking.
  void decode_reference(const uint8_t* codes, size_t n, float* y, size_t stride) const;
  int int_bits() const { return bits_; }
  const Rotation* rotation() const { return rot_.get(); }  // nullptr for q8 / q4
  // q8r / q4r: the values in the rotated domain (decode without the inverse rotation), so that
  // attention can score a rotated query and un-rotate its output once; q8 / q4: = decode.
  void decode_rotated(const uint8_t* codes, size_t n, float* y, size_t stride) const;

 private:
  void encode_one(const float* x, uint8_t* out) const;  // x already rotated
  void decode_one(const uint8_t* in, float* y) const;   // rotated domain
  int bits_;
  std::shared_ptr<const Rotation> rot_;
};

// kivi2 per token: 2-bit asymmetric (scale + zero point) per block of 32 channels.
class Kivi2Codec final : public Codec {
 public:
  Kivi2Codec(const CodecSpec& spec, int d);
  void encode(const float* x, size_t n, size_t stride, uint8_t* codes) const override;
  void decode(const uint8_t* codes, size_t n, float* y, size_t stride) const override;
};

// KIVI's key quantizer: per channel over groups of `group` consecutive tokens, b-bit asymmetric with
// an fp16 scale and an fp16 zero point per (group, channel). x: n tokens of dimension d at `stride`;
// y: the dequantized values (same shape; may alias x). A last partial group is quantized the same
// way over its own tokens. Returns the storage in bits: codes n*d*bits + 32 bits per (group, channel).
// Throws on non-finite input or a range beyond fp16.
double kivi_quantize_per_channel(const float* x, size_t n, int d, size_t stride, int group, int bits, float* y);

// The per-token quantizer of kivi2 on one block (exposed so that tests and the per-channel variant
// share one definition): values v[0..n) at stride `step`, b bits; writes codes, scale, zero point.
void kivi_quantize_block(const float* v, int n, size_t step, int bits, uint8_t* codes, uint16_t* scale_h,
                         uint16_t* zero_h);

}  // namespace tq
