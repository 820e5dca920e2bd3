// turboquant/model/ops.h — the operations of the llama forward pass on the CPU. Each op that
// accumulates has a readable scalar reference (*_ref, double accumulation) next to the fast path
// the model uses; tests compare them on random inputs and odd shapes.
// Layout convention: row-major; a weight matrix W [out, in] is the GGUF tensor with ne = {in, out}.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace tq::model {

// Threads the fast ops may use (OpenMP); 1 when the library was built without OpenMP.
int max_threads();
void set_threads(int n);  // n <= 0: all hardware threads

// y [T, out] = x [T, in] · W^T, W [out, in].
void matmul_ref(const float* x, const float* W, float* y, int T, int in, int out);
void matmul(const float* x, const float* W, float* y, int T, int in, int out);  // threaded, SIMD

// y [T, dim] = x / sqrt(mean(x^2) + eps) * g, per row; g [dim]. y may alias x.
void rmsnorm(const float* x, const float* g, float eps, float* y, int T, int dim);

// RoPE as llama.cpp applies it for LLM_ARCH_LLAMA (rope type NORM): within each head, the
// consecutive pairs (x[2i], x[2i+1]), i < n_rot/2, rotate by angle p * freq_scale * theta^(-2i/n_rot)
// (divided by freq_factors[i] when given); dims from n_rot on are left alone.
// x is [T, H, hd] in place; token t sits at position pos0 + t.
struct RopeParams {
  int n_rot = 0;             // rotated dims per head (even, <= hd)
  double theta = 10000.0;    // llama.rope.freq_base
  double freq_scale = 1.0;   // 1 / linear scaling factor
  const float* freq_factors = nullptr;  // [n_rot / 2] or null (rope_freqs.weight)
};
void rope(float* x, int T, int H, int hd, int pos0, const RopeParams& p);

// h [n] = silu(gate) * up, silu(g) = g / (1 + e^-g). h may alias gate.
void swiglu(const float* gate, const float* up, float* h, int64_t n);

// Causal grouped-query attention of n new queries over len stored positions (the last n of
// which are the queries' own): query i attends positions [0, len - n + i].
// q [n, Hq, hd], k/v [len, Hkv, hd] (rows of one position contiguous), out [n, Hq, hd];
// query head h reads KV head h / (Hq / Hkv); scores scaled by `scale`; double accumulation.
void attention_ref(const float* q, const float* k, const float* v, float* out, int n, int len, int Hq, int Hkv,
                   int hd, float scale);

// Log-softmax of logits [n] into lp [n] (double accumulation).
void log_softmax(const float* logits, double* lp, int n);
// KL(p || q) = Σ p (log p - log q) for log-probabilities lp, lq [n].
double kl_divergence(const double* lp, const double* lq, int n);
int argmax(const float* x, int n);  // first index of the maximum

// Next token from logits [n]: argmax at temp <= 0, else a draw from softmax(logits / temp).
int32_t sample_token(const float* logits, int n, float temp, std::mt19937_64& rng);

}  // namespace tq::model
