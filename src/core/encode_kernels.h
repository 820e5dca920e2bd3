// src/core/encode_kernels.h — the batch encoder's inner loops (rotation as a matrix product,
// nearest-centroid search). Highway versions with runtime dispatch live in encode_kernels_hwy.cpp;
// encode_kernels_scalar.cpp serves when Highway is absent. The per-vector path in tq_codec.cpp
// (TqCodec::encode_reference) is the reference these are tested against.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tq::kernels {

// Columns of the transposed, zero-padded matrix the product reads: a multiple of 16 floats so that
// every SIMD width up to 512 bits divides it and no column tail needs masking.
inline int padded_cols(int d) { return (d + 15) / 16 * 16; }

// y[r][i] = sum_j x[r][j] * M[i][j] for r < rows, i < d, where mt[j * ldm + i] = M[i][j]
// (ldm = padded_cols(d), padding columns zero). y rows must hold ldm floats (the padding columns
// receive 0). Every output element is accumulated the same way, acc = fma(x[r][j], mt[j][i], acc)
// for j = 0..d-1 from acc = 0, wherever its row falls in the batch: results do not depend on the
// batch size, the row's position or the thread count (deterministic; fp32 accumulation).
void matmul_rows(const float* x, size_t rows, size_t sx, const float* mt, int d, float* y, size_t sy);

// codes[i] = number of bounds t with x[i] > t, for ascending bounds[0..n_bounds) with n_bounds + 1
// a power of two <= 256 — exactly Codebook::quantize (ties go to the lower index).
void quantize(const float* x, size_t n, const float* bounds, int n_bounds, uint8_t* codes);

}  // namespace tq::kernels
