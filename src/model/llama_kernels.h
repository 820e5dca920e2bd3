// src/model/llama_kernels.h — the CUDA kernels of the llama forward pass besides the matmuls (cuBLAS)
// and the compressed attention (turboquant/cuda/decode.h). Plain C++ (no CUDA headers) so that
// g++-compiled code calls them. Every launcher queues its work on the default stream and returns
// the launch's cudaError_t as int (0 = success). Pointers are device memory; layouts row-major as
// in turboquant/model/ops.h, whose CPU functions are the reference for each kernel here.
#pragma once
#include <cstdint>

namespace tq::model::cudak {

// x [n, dim] = emb[tokens[t], :]; emb [vocab, dim]; token ids already range-checked on the host.
int embed(const float* emb, const int32_t* tokens, float* x, int n, int dim);

// y [n, dim] = x * r * g per row, r = 1 / sqrt(mean(x^2) + eps) from a double sum of squares (as
// ops.cpp). y may alias x.
int rmsnorm(const float* x, const float* g, float eps, float* y, int n, int dim);

// RoPE in place on x [n, H, hd], token t at position pos0 + t: the consecutive pairs (2i, 2i+1),
// i < n_rot / 2, rotate by (cos, sin) = cs[pos][i] of cs [positions, n_rot / 2, 2], a table the host
// fills with ops.cpp's double-precision angles rounded to float, so both sides use equal factors.
int rope(float* x, const float* cs, int n, int H, int hd, int n_rot, int pos0);

// y [n, width] += b [width] per row.
int add_bias(float* y, const float* b, int n, int width);

// g [count] = silu(g) * u = g / (1 + e^-g) * u.
int swiglu(float* g, const float* u, int64_t count);

// y [count] = x rounded to nearest fp16 (bf16 = false) or bf16 (bf16 = true): the 16-bit
// operands of the half-precision weight option (weights once, activations before each matmul).
int to_16bit(const float* x, void* y, int64_t count, bool bf16);

// out [n] = start, start + 1, ... (slot and length lists of the KV stores, made on the device so
// that a decode step uploads nothing).
int iota(int32_t* out, int n, int start);

// Exact causal grouped-query attention (the fp32 reference store on the GPU): q [n, Hq, hd],
// k / v [len, Hkv, hd], out [n, Hq, hd]; query i sees positions [0, len - n + i]; query head h
// reads KV head h / (Hq / Hkv). Float sums. len <= kExactMaxLen (scores sit in shared memory).
constexpr int kExactMaxLen = 8192;
int attention_exact(const float* q, const float* k, const float* v, float* out, int n, int len, int Hq, int Hkv,
                    int hd, float scale);

}  // namespace tq::model::cudak
