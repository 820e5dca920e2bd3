// turboquant/attention.h — decode attention over the compressed KV cache, on the CPU.
//
// For a batch of sequences, each with q_len >= 1 new query tokens (the last q_len tokens already
// appended to the cache; causal among themselves), every query head h reads KV head
// g = h / (Hq / Hkv) (GQA / MQA):
//
//   out[r, h, :] = softmax(scale · q[r, h, :] · K[g, :p+1]ᵀ) · V[g, :p+1],   p = L - q_len + i
//
// for query row r = (sequence b, new token i), L the sequence's length in that layer.
//
// attend_reference is the definition: it decodes every stored token with Codec::decode and does
// exact softmax attention in double precision. attend is the fused engine: it never decodes a
// vector. TurboQuant keys are scored in the rotated domain on the codes, V is accumulated in the
// rotated (and for prod codecs the sketch) domain and inverse-rotated once per output row;
// pass-through codecs (fp32/fp16/bf16) are read directly; other codecs (q4, q8, fp8, ...) are
// decoded a block of tokens at a time into a small float buffer. Online softmax; SIMD (Highway,
// runtime dispatch); threads over (sequence, KV head, split of the context) with a merge of the
// partial softmax states.
#pragma once
#include <cstdint>
#include <string>

#include "turboquant/kv_cache.h"

namespace tq {

struct AttendQuery {
  const int* seqs = nullptr;    // [batch] sequence ids (may repeat)
  const int* q_lens = nullptr;  // [batch] new query tokens per sequence; nullptr: 1 each
  int batch = 0;
  int heads_q = 0;              // a multiple of the cache's n_kv_heads
  // q rows in order: sequence 0's q_len tokens, then sequence 1's, ...: element (r, h, i) at
  // q + r*q_token_stride + h*q_head_stride + i (elements; 0 = dense [rows, Hq, D]).
  const void* q = nullptr;
  DType q_dtype = DType::kF32;
  int64_t q_token_stride = 0, q_head_stride = 0;
  void* out = nullptr;  // same row order, [rows, Hq, D] by the out strides
  DType out_dtype = DType::kF32;
  int64_t out_token_stride = 0, out_head_stride = 0;
  float scale = 0;  // 0: 1/sqrt(D)
};

struct AttentionOptions {
  int threads = 0;    // 0: all OpenMP threads
  int kv_splits = 0;  // 0: automatic; n > 0: split every (sequence, KV head) context into n parts
  int block_tokens = 64;  // tokens scored per online-softmax step (1..256)
  // TurboQuant K codes scored as int8 q · int8 centroids (AVX-512 VNNI + VBMI CPUs; 4x the fp32
  // FMA rate; scores within ~0.5% of the score spread of fp32, far below the codes' quantization
  // error). false: fp32 scores everywhere (the reference's sums up to float round-off).
  bool int8_scores = true;
  // TurboQuant V codes accumulated with bf16 centroids and weights (vdpbf16ps, fp32 sums; AVX-512
  // BF16 + VBMI CPUs; 2x the fp32 FMA rate; ~2^-9 relative rounding per product). false: fp32.
  bool bf16_values = true;
};

// Which path attend() uses for a layer's codecs: "fused-tq", "fused-passthrough", "decode-block".
struct AttentionPaths {
  std::string k, v;
};
AttentionPaths attention_paths(const KvCache& cache, int layer);

// The exact reference (double accumulation over decoded vectors). Validates like attend.
void attend_reference(const KvCache& cache, int layer, const AttendQuery& q);

// The fused engine. Throws tq::Error (nothing written) on a bad layer / sequence id (kOutOfRange),
// a bad shape, dtype, stride or q_len (kInvalidArgument: q_len must be in [1, L]), and
// kUnsupported when this build has no SIMD kernels (built without Highway).
void attend(const KvCache& cache, int layer, const AttendQuery& q, const AttentionOptions& opts = {});

// One-shot attention without a caller-managed cache: q [B, Hq, D], k and v [B, Hkv, T, D] float32
// (every sequence T long, one query per sequence at the last position) -> out [B, Hq, D] float32.
// K and V are encoded with k_codec / v_codec into a contiguous cache and attention runs on the
// codes (reference = true: the decode-and-double reference instead). scale 0: 1/sqrt(D).
void attention_dense(const float* q, const float* k, const float* v, int B, int Hq, int Hkv, int T, int D,
                     const std::string& k_codec, const std::string& v_codec, float scale, float* out,
                     bool reference = false, const AttentionOptions& opts = {});

// Name of the SIMD target the fused kernels run on this CPU (e.g. "AVX3", "AVX2").
const char* attention_simd_target();

// Checks a query against the cache and returns the number of query rows (sum of q_lens).
int64_t check_attend_query(const KvCache& cache, int layer, const AttendQuery& q);

}  // namespace tq
