// src/capi/index_capi.cpp — C API of FlatIndex: exceptions become status codes (capi_common.h).
#include "turboquant/turboquant_index.h"

#include <cstring>

#include "turboquant/error.h"
#include "turboquant/index.h"

struct tq_index {
  tq::FlatIndex idx;
};

namespace {
template <typename T>
void need(T* p, const char* what) {
  TQ_CHECK_ARG(p != nullptr, "{} is NULL", what);
}
}  // namespace

extern "C" {

tq_status tq_index_create(int dim, const char* description, tq_metric metric, tq_index** out) {
  return tq::capi::guard([&] {
    need(out, "out");
    *out = nullptr;
    need(description, "description");
    // Read the enum's bytes as an int: a C caller may pass any value, and loading an out-of-range
    // value as the C++ enum type is undefined behaviour (UBSan flags it).
    int m = 0;
    std::memcpy(&m, &metric, sizeof m);
    TQ_CHECK_ARG(m == TQ_METRIC_IP || m == TQ_METRIC_L2, "unknown metric {}", m);
    *out = new tq_index{tq::FlatIndex(dim, description, m == TQ_METRIC_L2 ? tq::Metric::kL2 : tq::Metric::kInnerProduct)};
  });
}

void tq_index_free(tq_index* index) { delete index; }

tq_status tq_index_add(tq_index* index, const float* x, size_t n, int dim, const int64_t* ids) {
  return tq::capi::guard([&] {
    need(index, "index");
    if (n > 0) need(x, "x");
    index->idx.add(x, n, dim, ids);
  });
}

tq_status tq_index_search(const tq_index* index, const float* q, size_t nq, int dim, int k, int threads,
                          float* distances, int64_t* labels) {
  return tq::capi::guard([&] {
    need(index, "index");
    if (nq > 0) {
      need(q, "q");
      need(distances, "distances");
      need(labels, "labels");
    }
    tq::SearchParams p;
    p.threads = threads;
    index->idx.search(q, nq, dim, k, distances, labels, p);
  });
}

tq_status tq_index_remove_ids(tq_index* index, const int64_t* ids, size_t n, size_t* n_removed) {
  return tq::capi::guard([&] {
    need(index, "index");
    if (n > 0) need(ids, "ids");
    const size_t r = index->idx.remove_ids(ids, n);
    if (n_removed) *n_removed = r;
  });
}

tq_status tq_index_reset(tq_index* index) {
  return tq::capi::guard([&] {
    need(index, "index");
    index->idx.reset();
  });
}

tq_status tq_index_save(const tq_index* index, const char* path) {
  return tq::capi::guard([&] {
    need(index, "index");
    need(path, "path");
    index->idx.save(path);
  });
}

tq_status tq_index_load(const char* path, tq_index** out) {
  return tq::capi::guard([&] {
    need(out, "out");
    *out = nullptr;
    need(path, "path");
    *out = new tq_index{tq::FlatIndex::load(path)};
  });
}

tq_status tq_index_size(const tq_index* index, size_t* n) {
  return tq::capi::guard([&] {
    need(index, "index");
    need(n, "n");
    *n = index->idx.size();
  });
}

tq_status tq_index_dim(const tq_index* index, int* dim) {
  return tq::capi::guard([&] {
    need(index, "index");
    need(dim, "dim");
    *dim = index->idx.dim();
  });
}

tq_status tq_index_code_size(const tq_index* index, size_t* bytes) {
  return tq::capi::guard([&] {
    need(index, "index");
    need(bytes, "bytes");
    *bytes = index->idx.code_size();
  });
}

}  // extern "C"
