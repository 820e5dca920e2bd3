/* turboquant/turboquant.h — C ABI of the codecs, the compressed KV cache and CPU decode attention.
 * Plain C (usable from Python ctypes): opaque handles, raw pointers with strides in elements,
 * every function returns a tq_status; on failure tq_last_error() (capi_common.h) says why and the
 * objects are unchanged (nothing half-appended, no output written).
 *
 *   tq_kv_cache_config cfg;  tq_kv_cache_config_init(&cfg);
 *   cfg.n_layers = 32; cfg.n_kv_heads = 8; cfg.head_dim = 128; cfg.codec = "k4v3"; cfg.num_pages = 4096;
 *   tq_kv_cache* c;  if (tq_kv_cache_create(&cfg, &c) != TQ_OK) puts(tq_last_error());
 *   int s;  tq_kv_cache_add_sequence(c, &s);
 *   tq_kv_cache_append(c, layer, s, n, k, v, TQ_F32, 0, 0);            // k, v [n, Hkv, D]
 *   tq_attend_args a;  tq_attend_args_init(&a);
 *   a.seqs = &s; a.batch = 1; a.heads_q = 32; a.q = q; a.out = out;    // q, out [1, Hq, D]
 *   tq_kv_cache_attend(c, layer, &a);
 *   tq_kv_cache_destroy(c);
 */
#ifndef TURBOQUANT_H
#define TURBOQUANT_H

#include "turboquant/capi_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types of caller buffers (same values as tq::DType). The last enumerator makes the enum
 * 32 bits wide, so a bad value from a caller (rejected with TQ_INVALID_ARGUMENT) is not undefined
 * behaviour in the C++ implementation. */
typedef enum tq_dtype { TQ_F32 = 0, TQ_F16 = 1, TQ_BF16 = 2, TQ_DTYPE_MAX_ENUM_ = 0x7FFFFFFF } tq_dtype;

/* ---- codecs ------------------------------------------------------------------------------------ */
typedef struct tq_codec tq_codec;

/* spec: "tq3", "tq2.5", "tq4p", "fp16", "q4", ... (turboquant/codec.h); dim >= 1. */
TQ_API tq_status tq_codec_create(const char* spec, int dim, tq_codec** out);
TQ_API void tq_codec_destroy(tq_codec* c);
/* Bytes of one encoded vector. */
TQ_API tq_status tq_codec_code_size(const tq_codec* c, size_t* bytes);
TQ_API tq_status tq_codec_dim(const tq_codec* c, int* dim);
/* Canonical name into buf (NUL-terminated, truncated to len). */
TQ_API tq_status tq_codec_name(const tq_codec* c, char* buf, size_t len);
/* x: n vectors of dim floats, row i at x + i*stride (stride >= dim; 0 = dim); codes: n * code_size. */
TQ_API tq_status tq_codec_encode(const tq_codec* c, const float* x, size_t n, size_t stride, uint8_t* codes);
TQ_API tq_status tq_codec_decode(const tq_codec* c, const uint8_t* codes, size_t n, float* y, size_t stride);

/* ---- KV cache ---------------------------------------------------------------------------------- */
typedef struct tq_kv_cache tq_kv_cache;

typedef struct tq_kv_cache_config {
  int n_layers, n_kv_heads, head_dim;
  const char* codec;       /* KV codec of every layer: "fp16", "tq3", "k4v3", "k=tq4,v=fp16" */
  const char* edge_codec;  /* codec of the first and last edge_layers layers (NULL: "fp16") */
  int edge_layers;
  int contiguous;          /* 0: paged (page_tokens, num_pages); 1: contiguous (max_seqs, max_seq_len) */
  int page_tokens, num_pages;
  int max_seqs, max_seq_len; /* paged: 0 = no limit */
  int window;              /* most recent tokens kept in float32 */
} tq_kv_cache_config;

/* Defaults: 1 layer, 1 head, head_dim 128, "fp16", paged, 16 tokens per page, no pages (set num_pages). */
TQ_API void tq_kv_cache_config_init(tq_kv_cache_config* cfg);
TQ_API tq_status tq_kv_cache_create(const tq_kv_cache_config* cfg, tq_kv_cache** out);
TQ_API void tq_kv_cache_destroy(tq_kv_cache* c);
TQ_API tq_status tq_kv_cache_add_sequence(tq_kv_cache* c, int* seq);
TQ_API tq_status tq_kv_cache_remove_sequence(tq_kv_cache* c, int seq);
TQ_API tq_status tq_kv_cache_seq_len(const tq_kv_cache* c, int layer, int seq, int* len);
/* k, v: [n, Hkv, D] of dtype; element (t, h, i) at t*token_stride + h*head_stride + i (0: dense). */
TQ_API tq_status tq_kv_cache_append(tq_kv_cache* c, int layer, int seq, int n, const void* k, const void* v,
                                    tq_dtype dtype, int64_t token_stride, int64_t head_stride);

typedef struct tq_kv_memory {
  uint64_t bytes_used, bytes_reserved, pages_used, pages_total, window_bytes;
  double bytes_per_token; /* encoded bytes of one token, all layers, K + V */
} tq_kv_memory;
TQ_API tq_status tq_kv_cache_memory(const tq_kv_cache* c, tq_kv_memory* out);

/* ---- attention --------------------------------------------------------------------------------- */
typedef struct tq_attend_args {
  const int* seqs;    /* [batch] */
  const int* q_lens;  /* [batch] new tokens per sequence, causal among themselves; NULL: 1 each */
  int batch, heads_q;
  const void* q;      /* rows in order (seq 0's q_len tokens, seq 1's, ...), [rows, Hq, D] by strides */
  tq_dtype q_dtype;
  int64_t q_token_stride, q_head_stride; /* elements; 0 = dense */
  void* out;
  tq_dtype out_dtype;
  int64_t out_token_stride, out_head_stride;
  float scale;        /* 0: 1/sqrt(D) */
  int threads;        /* 0: all */
  int fp32_scores;    /* 0: TurboQuant K scored in int8 and V summed with bf16 products on AVX-512
                         VNNI/BF16 CPUs (~0.3% output rounding, ~2x faster); 1: fp32 everywhere */
} tq_attend_args;
TQ_API void tq_attend_args_init(tq_attend_args* a);
/* Fused attention on the codes (SIMD + threads). */
TQ_API tq_status tq_kv_cache_attend(const tq_kv_cache* c, int layer, const tq_attend_args* a);
/* Reference: decode every token, exact softmax in double (slow; for checks). */
TQ_API tq_status tq_kv_cache_attend_reference(const tq_kv_cache* c, int layer, const tq_attend_args* a);

/* One-shot attention without a cache object: q [B, Hq, D], k and v [B, Hkv, T, D] float32, every
 * sequence of length T, one query per sequence (at the last position); K and V are encoded with
 * k_codec / v_codec and attention runs on the codes. out [B, Hq, D] float32. scale 0: 1/sqrt(D). */
TQ_API tq_status tq_attention_dense(const float* q, const float* k, const float* v, int batch, int heads_q,
                                    int heads_kv, int T, int head_dim, const char* k_codec, const char* v_codec,
                                    float scale, float* out);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* TURBOQUANT_H */
