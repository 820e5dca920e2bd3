// src/kv/attn_int8.h — int8 scoring of packed codes (AVX-512 VNNI + VBMI), the fast score path of
// the fused CPU attention for TurboQuant K streams.
//
//   s[r*ld_s + t] = Σ_j q[r][j] · table[code_{t,j}]   (natural coordinate order, m % 32 == 0)
//
// computed as q8[r] · c8 with q8 = round(q / qs_r) (per row, |q8| <= 127) and c8 = round(c / cs)
// (per stream): one vpdpbusd does 64 multiply-adds, four times the fp32 FMA rate. The unpacking
// of a 32-code group of two tokens into centroid bytes is one vpermi2b (gathers the plane bytes of
// both tokens), one or two vpmultishiftqb (move each code's bits to its byte) and one vpermb (the
// centroid lookup), so two tokens share one register and their horizontal sums are half as many.
// Rounding makes the scores differ from the fp32 kernels by ~0.5% of the score spread (q8: ~0.2%,
// c8: up to half a step of 1/127 of the largest centroid), far below the codes' own quantization
// error; AttentionOptions::int8_scores = false keeps fp32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kv/attn_kernels.h"

namespace tq::kv {

// True when this CPU runs the int8 kernels (AVX-512 F/BW/VNNI/VBMI) and TQ_KV_NO_INT8 is unset.
bool int8_scores_available();
// True when dot_codes_i8 handles this stream (1..4 bits, m a positive multiple of 32).
bool int8_scores_fit(int bits, int m);

// Per-stream centroid bytes: lut[i] = 128 + round(table[i & (2^bits - 1)] / cs), 64 entries.
struct Int8Table {
  alignas(64) uint8_t lut[64];
  float cs = 0;  // centroid step
};
Int8Table make_int8_table(int bits, const float* table);

// R query rows quantized: q8[r*m + j], step qs[r], corr[r] = 128 · Σ_j q8[r][j] (the offset of
// the unsigned centroid bytes).
struct Int8Query {
  std::vector<int8_t> q8;
  std::vector<float> qs;
  std::vector<int32_t> corr;
  int m = 0, R = 0;
};
// q[r*ld_q + j], natural order, m coordinates.
void quantize_query(const float* q, size_t ld_q, int R, int m, Int8Query& out);

// Scores of the run's tokens (codes at each token's pointer + off).
void dot_codes_i8(int bits, int m, const TokenRun& tr, size_t off, const Int8Table& tab, const Int8Query& q,
                  float* s, size_t ld_s);

// ---- bf16 value accumulation (AVX-512 BF16 + VBMI) ------------------------------------------------
//
//   acc[r*ld_a + j] += Σ_t w[r*ld_w + t] · table[code_{t,j}]   (natural order, m % 32 == 0)
//
// with the centroids and the weights rounded to bfloat16 (8-bit mantissa: 2^-9 relative) and fp32
// accumulation: one vdpbf16ps adds two tokens' products for 16 coordinates, twice the fp32 FMA
// rate. The two tokens' codes of 16 coordinates are gathered by one vpermi2b, moved to the low
// bits of alternate 16-bit words by vpmultishiftqb (+ vpternlogd for 3 bits) and looked up by
// vpermw in a 32-entry bf16 table.
bool bf16_values_available();  // AVX-512 F/BW/BF16/VBMI and TQ_KV_NO_INT8 unset
struct Bf16Table {
  alignas(64) uint16_t lut[32];
};
Bf16Table make_bf16_table(int bits, const float* table);
void acc_codes_bf16(int bits, int m, const TokenRun& tr, size_t off, const Bf16Table& tab, const float* w, size_t ld_w,
                    int R, float* acc, size_t ld_a);

}  // namespace tq::kv
