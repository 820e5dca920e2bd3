// src/kv/attn_alt_kernels.h — lookup-table alternatives to the production code kernels, kept to be
// measured against them (bench/bench_attention.cpp, docs/BENCHMARKS.md) and tested for
// correctness; the engine does not use them (they lost).
//
//   dot_codes_lut_gather  scores from per-coordinate tables T_r[i][j] = q_r[i]·c[j] built once per
//                         query: one gather per 16 coordinates and row instead of a permute + FMA.
//                         1..4 bits, m a multiple of 32, 16-lane targets; kernel order (as dot_codes).
//   acc_codes_histogram   V as per-coordinate weight histograms H_r[i][code] += w (scalar), turned
//                         into values once at the end: acc_r[i] += Σ_j c[j] H_r[i][j]. Any bits;
//                         natural coordinate order.
#pragma once
#include <cstddef>

#include "kv/attn_kernels.h"

namespace tq::kv {

// False when this CPU's SIMD target has no gather variant (not 16 lanes) or bits/m do not fit.
bool lut_gather_supported(int bits, int m);
void dot_codes_lut_gather(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* q,
                          size_t ld_q, int R, float* s, size_t ld_s);
void acc_codes_histogram(int bits, int m, const TokenRun& tr, size_t off, const float* table, const float* w,
                         size_t ld_w, int R, float* acc, size_t ld_a);

}  // namespace tq::kv
