// src/index/flat_index_impl.h — FlatIndex's state, shared by flat_index.cpp (add/search/remove)
// and index_io.cpp (save/load).
#pragma once
#include <atomic>
#include <memory>
#include <vector>

#include "index/scan_layout.h"
#include "turboquant/index.h"
#include "turboquant/tq_codec.h"

namespace tq {

struct FlatIndex::Impl {
  int d = 0;
  Metric metric = Metric::kInnerProduct;
  IndexSpec spec;
  std::shared_ptr<const TqCodec> codec;  // null until the first add for fractional codecs
  index::ScanGeometry geo;
  std::vector<std::vector<float>> centroids;  // per part, fp32 (what decode uses)

  size_t n = 0;
  int64_t next_id = 0;
  std::vector<uint8_t> blocks;  // ceil(n / 32) * geo.block_bytes()
  std::vector<float> norms;     // n * parts: part norms as decode reads them
  std::vector<float> sqnorm;    // n (L2 only): ||decoded||^2, or with norm correction ||x||^2
  std::vector<int64_t> ids;     // n
  std::vector<float> vectors;   // n * d when spec.rerank > 0

  mutable std::atomic<size_t> stat_scanned{0}, stat_candidates{0};

  size_t n_parts() const { return codec ? codec->parts().size() : 0; }
  void set_codec(std::shared_ptr<const TqCodec> c);
  // Appends n vectors given as unpacked codes + part norms (+ fp32 copies when reranking).
  // All allocation happens before anything changes: on failure the index is unchanged.
  // sq: ||x||^2 per vector (norm correction, L2) or nullptr to compute ||decoded||^2.
  void append(const uint8_t* codes, const float* part_norms, const float* x, const int64_t* new_ids, size_t count,
              int threads, const float* sq = nullptr);
  double decoded_sqnorm(const uint8_t* codes, const float* part_norms) const;
};

}  // namespace tq
