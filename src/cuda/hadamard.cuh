// src/cuda/hadamard.cuh — the randomized Hadamard rotation of a D-vector held by one warp, lane l
// owning elements [l*E, l*E + E), E = D / 32; shared by the decode kernel (q rotation, inverse
// rotation of the output) and the append kernel (encoding, which must match the CPU bit for bit).
// The float operations are the CPU fwht's, in its order (stage h = 1, 2, ..., D/2), written with
// explicit _rn intrinsics so the compiler cannot contract them into FMAs.
#pragma once
#include <cstdint>

namespace tq::cuda {

// Orthonormal Walsh-Hadamard transform (butterflies then the 1/sqrt(D) scale).
template <int D>
__device__ __forceinline__ void warp_fwht(float (&x)[D / 32], int lane) {
  constexpr int E = D / 32;
#pragma unroll
  for (int h = 1; h < E; h <<= 1)
#pragma unroll
    for (int e = 0; e < E; ++e)
      if (!(e & h)) {
        const float a = x[e], b = x[e + h];
        x[e] = __fadd_rn(a, b);
        x[e + h] = __fsub_rn(a, b);
      }
  // Across lanes: the lane holding the lower index keeps a + b, its partner a - b. Both are one
  // FFMA with a per-lane sign, fma(x, ±1, y) = round(y ± x): bit-identical to __fadd_rn /
  // __fsub_rn (the product by ±1 is exact, one rounding), but one instruction where the select of
  // two results took three (the chain of 15 stages sits on the q prologue and the output row).
  // The lane id is re-read here (volatile): derived from `lane`, the five signs were hoisted out
  // of the decode kernel's segment loop and kept live across it (spills).
  uint32_t ln;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(ln));
#pragma unroll
  for (int m = 1; m < 32; m <<= 1) {
    const float sg = (ln & m) ? -1.f : 1.f;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const float y = __shfl_xor_sync(0xffffffffu, x[e], m);
      x[e] = __fmaf_rn(x[e], sg, y);
    }
  }
  const float s = 1.0f / sqrtf(float(D));
#pragma unroll
  for (int e = 0; e < E; ++e) x[e] = __fmul_rn(x[e], s);
}

// Multiplies lane l's elements by the signs of one round: `bits` holds them from bit 0 (the lane's
// E elements lie in one 32-bit word of the sign mask: E divides 32).
template <int D>
__device__ __forceinline__ void apply_signs(float (&x)[D / 32], uint32_t bits) {
#pragma unroll
  for (int e = 0; e < D / 32; ++e) x[e] = __int_as_float(__float_as_int(x[e]) ^ int(((bits >> e) & 1u) << 31));
}

// Lane l's sign bits of one round, from the round's mask (bit i set = coordinate i negated); the
// vector's coordinates start at bit `first` of the mask (a part of a fractional codec).
template <int D>
__device__ __forceinline__ uint32_t lane_signs(const uint32_t (&mask)[8], int lane, int first = 0) {
  const int n = first + lane * (D / 32);
  return mask[n >> 5] >> (n & 31);
}

// The randomized Hadamard R = H·D3·H·D2·H·D1 (Rotation::kHadamardRounds rounds) of a D-vector held
// by the warp, and its inverse; sign[r] = the masks of round r (vector at bit `first`).
constexpr int kHadamardRounds = 3;
template <int D>
__device__ __forceinline__ void randomized_hadamard(float (&x)[D / 32], const uint32_t (*sign)[8], int lane,
                                                    int first = 0) {
#pragma unroll
  for (int r = 0; r < kHadamardRounds; ++r) {
    apply_signs<D>(x, lane_signs<D>(sign[r], lane, first));
    warp_fwht<D>(x, lane);
  }
}
template <int D>
__device__ __forceinline__ void randomized_hadamard_inv(float (&x)[D / 32], const uint32_t (*sign)[8], int lane,
                                                        int first = 0) {
#pragma unroll
  for (int r = kHadamardRounds - 1; r >= 0; --r) {
    warp_fwht<D>(x, lane);
    apply_signs<D>(x, lane_signs<D>(sign[r], lane, first));
  }
}

}  // namespace tq::cuda
