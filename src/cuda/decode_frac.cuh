// src/cuda/decode_frac.cuh — pieces of the v3 decode kernel (decode_v3.cuh) used only by the
// fractional codecs tq1.5 / tq2.5 / tq3.5: a compile-time loop over code groups (each group's bit width and
// part are template arguments) and the dense rotation of a 96 / 192-dim part 1.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

#include "cuda/decode_v3_params.h"

namespace tq::cuda::v3 {

// f(integral_constant<int, i>) for i = 0..N-1: a loop whose index is a compile-time constant in the
// body (fractional codecs: each group's bit width and part are template arguments).
template <class F, int... I>
__device__ __forceinline__ void static_for_seq(F& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, class F>
__device__ __forceinline__ void static_for(F&& f) {
  static_for_seq(f, std::make_integer_sequence<int, N>{});
}

// Fractional codecs, rotations of the two parts (part 0 = coordinates [0, M0), part 1 = [M0, D)).
// Part 0 (M0 = 32, 64 or 128) and a power-of-two part 1 use the randomized Hadamard of hadamard.cuh
// (signs at bit first + i of the masks); a part 1 of 96 or 192 dims is a dense Haar rotation
// (decode_v3_params.h kproj / vproj, 1/sqrt(M1) folded in), applied by dense_part1.
// Dense part 1 over the G rows x_s[h][D] (shared memory): y[h][32k + lane] = sum_j
// A1[j][32k + lane - M0] x[h][M0 + j] for 32k >= M0, A1 = A + M0^2 (the part-1 block). The loop is
// bound by the latency of the matrix loads (L1 after prefetch_part1, else L2): the 4 consumer warps
// split the j range, each matrix value is loaded once and applied to up to 4 rows, and the warps
// leave partial sums part_s[warp][h][D] (part-1 coordinates only) that the caller adds up.
// dense_block: the same for any diagonal block, coordinates [M0, M0 + M1) of the rows, A1 = the
// block's M1 x M1 matrix (the fractional prod's two sketch blocks, decode_fprod.cuh).
template <int D, int M0, int M1>
__device__ __forceinline__ void dense_block(const float* __restrict__ A1, const float* x_s, float* part_s, int G,
                                            int warp, int lane) {
  constexpr int K0 = M0 / 32, E1 = M1 / 32, R = 4;
  static_assert(M0 % 32 == 0 && M1 % 32 == 0 && M0 + M1 <= D, "whole 32-groups of the row");
  for (int h0 = 0; h0 < G; h0 += R) {
    const int nh = min(R, G - h0);
    const float* x = x_s + h0 * D + M0;
    float y[R][E1];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int k = 0; k < E1; ++k) y[r][k] = 0.f;
#pragma unroll 8
    for (int j = warp * (M1 / kConsumers); j < (warp + 1) * (M1 / kConsumers); ++j) {
      float a[E1];
#pragma unroll
      for (int k = 0; k < E1; ++k) a[k] = __ldg(A1 + j * M1 + 32 * k + lane);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float xj = r < nh ? x[r * D + j] : 0.f;
#pragma unroll
        for (int k = 0; k < E1; ++k) y[r][k] = fmaf(a[k], xj, y[r][k]);
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (r < nh)
#pragma unroll
        for (int k = 0; k < E1; ++k) part_s[(warp * G + h0 + r) * D + 32 * (K0 + k) + lane] = y[r][k];
  }
}
template <int D, int M0>
__device__ __forceinline__ void dense_part1(const float* __restrict__ A, const float* x_s, float* part_s, int G,
                                            int warp, int lane) {
  dense_block<D, M0, D - M0>(A + M0 * M0, x_s, part_s, G, warp, lane);
}

// Brings the part-1 block of a dense_part1 matrix into L1 ahead of use; `i0`, `n`: this thread's
// share of the 128-byte lines (i0, i0 + n, ...).
template <int D, int M0>
__device__ __forceinline__ void prefetch_part1(const float* A, int i0, int n) {
  constexpr int kLines = (D - M0) * (D - M0) * 4 / 128;
  const float* A1 = A + M0 * M0;
  for (int i = i0; i < kLines; i += n) asm volatile("prefetch.global.L1 [%0];" ::"l"(A1 + 32 * i));
}

}  // namespace tq::cuda::v3
