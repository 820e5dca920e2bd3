// turboquant/index.h — flat (exhaustive) vector index on TurboQuant codes.
//
// Adding a vector is encoding it (no training: the rotation and the Lloyd-Max codebook depend only
// on the dimension and the seed). Search is asymmetric: the query stays in fp32, is rotated once,
// and scores every code through per-query lookup tables (q_i * c_j), 32 codes per SIMD step on
// 8-bit quantized tables (faiss "fast-scan" style), then re-scores the survivors with exact fp32
// tables. Optionally the best `rerank` candidates are re-ranked with stored fp32 vectors.
//
// Index descriptions (in the spirit of faiss index_factory):
//   TQ<b>[.5][:codec option...][,rerank<R>]
//   TQ4            4-bit TurboQuant-mse codes + fp16 norm (d/2 + 2 bytes per vector)
//   TQ3.5          fractional: a quarter.. half of the channels (outliers from the first batch) at 4 bits
//   TQ2,rerank64   2-bit codes; the best 64 by code score re-ranked with stored fp32 vectors
//   TQ4:rot=dense  codec options as in parse_codec (rot=, norm=, seed=)
//   TQ4,nc         norm correction: each part's scale is stored as ||x_p|| / <ĉ_p, u_p> instead of
//                  ||x_p|| (u_p the unit rotated part, ĉ_p its centroids), so that the code score
//                  n·<Rq, ĉ> estimates <q, x> without the per-vector shrinkage of the mse
//                  reconstruction (the estimator RaBitQ uses); same bytes, better inner-product
//                  ranking. The decoded vector is then x̂ / <ĉ, u>. L2 indexes also keep ||x||^2.
// Distances: Metric::kInnerProduct returns inner products (larger first), kL2 squared L2 distances
// (smaller first), both of the query with the decoded vector — or with the stored vector for the
// re-ranked results.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "turboquant/codec.h"

namespace tq {

class TqCodec;

enum class Metric : uint8_t { kInnerProduct = 0, kL2 = 1 };
const char* metric_name(Metric m);          // "ip" | "l2"
Metric parse_metric(std::string_view s);    // throws kInvalidArgument

struct IndexSpec {
  CodecSpec codec;  // a TurboQuant-mse codec
  int rerank = 0;   // 0: no stored vectors
  bool nc = false;  // norm correction (see above)
  std::string name() const;  // canonical; parse_index_spec(name()) round-trips
};
// Throws tq::Error(kInvalidArgument) naming the offending text.
IndexSpec parse_index_spec(std::string_view description);

struct SearchParams {
  int threads = 0;         // 0: the OpenMP default; results are the same for any value
  int rerank = -1;         // -1: the index's own; 0: off; R: re-rank the best R (needs stored vectors)
  // Candidates survive the 8-bit-table scan when their score could still reach the k-th best given
  // the table rounding error. exact_adc = true uses the worst-case rounding bound, so the results
  // are exactly those of a brute-force scan with fp32 tables (tests); false uses 4 standard
  // deviations of the rounding error (faster, the same results in practice).
  bool exact_adc = false;
};

struct ScanStats {  // of the last search call's first query, for tuning and tests
  size_t scanned = 0, candidates = 0;
};

class FlatIndex {
 public:
  // d >= 2. Throws for a bad description or a codec that is not TurboQuant-mse.
  FlatIndex(int d, std::string_view description, Metric metric = Metric::kInnerProduct);
  ~FlatIndex();
  FlatIndex(FlatIndex&&) noexcept;
  FlatIndex& operator=(FlatIndex&&) noexcept;

  int dim() const;
  Metric metric() const;
  const IndexSpec& spec() const;
  size_t size() const;
  size_t code_size() const;    // bytes of one encoded vector (codes + norms), as saved
  size_t memory_bytes() const; // everything held for the vectors (scan codes, norms, ids, fp32 copies)
  const std::vector<int64_t>& ids() const;
  // The codec; for fractional descriptions it exists after the first add (nullptr before).
  std::shared_ptr<const TqCodec> codec() const;

  // x: n rows of `d` floats (d must equal dim()). ids: n labels (any int64 but INT64_MAX) or nullptr
  // for consecutive labels continuing after the largest given so far. Fractional codecs pick their
  // outlier channels from the first batch. Throws on a dimension mismatch, a non-finite value, the
  // label INT64_MAX or consecutive labels that would reach it; the index is then unchanged.
  // threads: 0 = OpenMP default (the codes do not depend on it).
  void add(const float* x, size_t n, int d, const int64_t* ids = nullptr, int threads = 0);

  // q: nq rows of d floats. distances/labels: nq * k, best first. 1 <= k <= size().
  void search(const float* q, size_t nq, int d, int k, float* distances, int64_t* labels,
              const SearchParams& params = {}) const;
  // Brute force over decoded vectors in double: the definition search() is tested against
  // (no re-ranking). Slow.
  void search_reference(const float* q, size_t nq, int d, int k, float* distances, int64_t* labels) const;

  // Removes every vector whose label is in ids; returns how many were removed.
  size_t remove_ids(const int64_t* ids, size_t n);
  void reset();  // removes all vectors; the codec (and fractional channel choice) stays

  // Versioned file with a checksum; save writes PATH.tmp and renames. load refuses a truncated,
  // corrupted, or unknown-version file with tq::Error(kIoError) and a message.
  void save(const std::string& path) const;
  static FlatIndex load(const std::string& path);
  // The same from a whole file's bytes in memory (size bytes at data; not kept); `name` stands for
  // the path in error messages. Cost: the codec is rebuilt from the description (a dense rotation
  // is O(d^3) time, d^2 memory), then O(size).
  static FlatIndex load_from_memory(const uint8_t* data, size_t size, const std::string& name = "<memory>");

  // Decoded vector of slot i (0 <= i < size()), original domain.
  void reconstruct(size_t i, float* out) const;
  ScanStats last_stats() const;

  struct Impl;

 private:
  explicit FlatIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> p_;
};

}  // namespace tq
