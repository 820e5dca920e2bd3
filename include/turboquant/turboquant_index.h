/* turboquant/turboquant_index.h — C API of the flat TurboQuant index (turboquant/index.h).
 * Every function returns a tq_status; on failure tq_last_error() says why and the index is
 * unchanged. Handles are not synchronized: calls on one handle must not overlap, except searches. */
#ifndef TURBOQUANT_INDEX_H
#define TURBOQUANT_INDEX_H

#include "turboquant/capi_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tq_index tq_index;

typedef enum tq_metric { TQ_METRIC_IP = 0, TQ_METRIC_L2 = 1 } tq_metric;

/* description: "TQ4", "TQ2,rerank64", "TQ3.5", "TQ4:rot=dense", ... */
TQ_API tq_status tq_index_create(int dim, const char* description, tq_metric metric, tq_index** out);
TQ_API void tq_index_free(tq_index* index);
/* x: n rows of dim floats (dim must match the index); ids: n labels or NULL (consecutive). */
TQ_API tq_status tq_index_add(tq_index* index, const float* x, size_t n, int dim, const int64_t* ids);
/* q: nq rows of dim floats; distances, labels: nq * k each, best first. threads: 0 = default. */
TQ_API tq_status tq_index_search(const tq_index* index, const float* q, size_t nq, int dim, int k, int threads,
                                 float* distances, int64_t* labels);
TQ_API tq_status tq_index_remove_ids(tq_index* index, const int64_t* ids, size_t n, size_t* n_removed);
TQ_API tq_status tq_index_reset(tq_index* index);
TQ_API tq_status tq_index_save(const tq_index* index, const char* path);
TQ_API tq_status tq_index_load(const char* path, tq_index** out);
TQ_API tq_status tq_index_size(const tq_index* index, size_t* n);
TQ_API tq_status tq_index_dim(const tq_index* index, int* dim);
/* Bytes of one saved vector (codes + norms). */
TQ_API tq_status tq_index_code_size(const tq_index* index, size_t* bytes);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* TURBOQUANT_INDEX_H */
