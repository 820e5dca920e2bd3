/* turboquant/turboquant_cuda.h — C ABI of the CUDA decode attention (turboquant/cuda/decode.h) and append
 * (turboquant/cuda/append.h).
 * Usable from Python ctypes with torch tensors' data_ptr(). All pointers are device pointers except
 * the plan and the info structs. dtype codes: 0 = float32, 1 = float16, 2 = bfloat16. */
#ifndef TURBOQUANT_CUDA_H
#define TURBOQUANT_CUDA_H
#include "turboquant/capi_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tq_cuda_decode_plan tq_cuda_decode_plan;

/* Byte layout of one page of a K or V pool (turboquant/layout.h, KvPageLayout). quad_bits was added
 * after 0.1.0 (the struct grew by 4 bytes: callers built against the older header must be rebuilt). */
typedef struct tq_kv_page_info {
  uint32_t page_tokens, codes_bytes, scalar_bytes, head_block_bytes, page_bytes;
  uint32_t quad_bits; /* > 0: codes in 16-token blocks of token quads (layout.h quad_pos), bits per code */
} tq_kv_page_info;

/* Plan flags (the _ex creators). TQ_CUDA_TOKEN_QUADS: decode, the V pool holds tqB codes in token
 * quads (PV on int8 tensor cores; tqB/tqB, B = 2..4); append, write the pool in token quads (tq1..tq4,
 * head_dim % 64 == 0). */
#define TQ_CUDA_TOKEN_QUADS 1u

/* kv_codec: "fp16", "tq3", "k4v3", "k=tq4,v=tq3". Fails (TQ_UNSUPPORTED) when no kernel exists. */
TQ_API tq_status tq_cuda_decode_plan_create(const char* kv_codec, int batch, int heads_q, int heads_kv, int head_dim,
                                            int page_tokens, int max_pages_per_seq, int num_pages, int max_seq_len,
                                            int q_dtype, int out_dtype, float scale, tq_cuda_decode_plan** out);
TQ_API tq_status tq_cuda_decode_plan_create_ex(const char* kv_codec, int batch, int heads_q, int heads_kv, int head_dim,
                                               int page_tokens, int max_pages_per_seq, int num_pages, int max_seq_len,
                                               int q_dtype, int out_dtype, float scale, unsigned flags,
                                               tq_cuda_decode_plan** out);
TQ_API tq_status tq_cuda_decode_plan_info(const tq_cuda_decode_plan* plan, size_t* workspace_bytes, int* splits,
                                          tq_kv_page_info* k, tq_kv_page_info* v);
/* q [B,Hq,D], pools as described by plan_info (16-byte aligned), page_table int32 [B, max_pages_per_seq],
 * seq_lens int32 [B], out [B,Hq,D], workspace of plan_info's size (256-byte aligned; zeroed by the first
 * run that sees it). One kernel launch, no allocation, no host synchronization: capturable in a CUDA
 * graph. */
TQ_API tq_status tq_cuda_decode_run(const tq_cuda_decode_plan* plan, const void* q, const void* k_pool,
                                    const void* v_pool, const int32_t* page_table, const int32_t* seq_lens,
                                    void* out, void* workspace, void* stream);
/* Reads and clears (synchronously) the device-side error flag of the runs since the last check: bit 0
 * a seq_len < 0 or > max_seq_len, bit 1 a page id out of range (those rows attend to nothing rather
 * than read out of bounds). */
TQ_API tq_status tq_cuda_decode_check(const tq_cuda_decode_plan* plan, const void* workspace, int* flag);
TQ_API void tq_cuda_decode_plan_destroy(tq_cuda_decode_plan* plan);

/* ---- append: encode new K or V vectors into a page pool (codes bit-identical to the CPU encoder) ----
 * codec: "fp16", "tq1".."tq8", "tq1.5".."tq7.5", "tq2p".."tq8p", "tq1.5p".."tq7.5p" (one plan per pool;
 * the fractional and prod codecs at the head_dims of cuda/append.h). in_dtype as above. */
typedef struct tq_cuda_append_plan tq_cuda_append_plan;
TQ_API tq_status tq_cuda_append_plan_create(const char* codec, int heads_kv, int head_dim, int page_tokens,
                                            int num_pages, int in_dtype, tq_cuda_append_plan** out);
TQ_API tq_status tq_cuda_append_plan_create_ex(const char* codec, int heads_kv, int head_dim, int page_tokens,
                                               int num_pages, int in_dtype, unsigned flags, tq_cuda_append_plan** out);
TQ_API tq_status tq_cuda_append_plan_info(const tq_cuda_append_plan* plan, tq_kv_page_info* info);
/* x [n_tokens, heads_kv, head_dim], slot_mapping int32 [n_tokens] = page * page_tokens + offset (negative:
 * skipped), pool: device pages. No allocation, no host synchronization. */
TQ_API tq_status tq_cuda_append_run(const tq_cuda_append_plan* plan, const void* x, const int32_t* slot_mapping,
                                    int n_tokens, void* pool, void* stream);
/* Reads and clears the error flag: bit 0 a slot beyond the pool (not written), bit 1 a norm beyond fp16. */
TQ_API tq_status tq_cuda_append_check(const tq_cuda_append_plan* plan, int* flag);
TQ_API void tq_cuda_append_plan_destroy(tq_cuda_append_plan* plan);

#ifdef __cplusplus
}
#endif
#endif
