// turboquant/kv_cache.h — compressed KV cache: per layer a K store and a V store, each a pool of
// fixed-size pages in the KvPageLayout of turboquant/layout.h, shared page ids across layers
// (vLLM's scheme: a sequence owns a list of page ids, page p of layer l lives in layer l's pools).
//
// Typical use from a model runner (one cache for the whole model):
//
//   tq::KvCacheConfig cfg;  cfg.n_layers = 32; cfg.n_kv_heads = 8; cfg.head_dim = 128;
//   cfg.codec = "k4v3"; cfg.edge_layers = 2; cfg.edge_codec = "fp16";   // first/last 2 layers fp16
//   cfg.page_tokens = 16; cfg.num_pages = 4096;
//   tq::KvCache cache(cfg);
//   int s = cache.add_sequence();
//   for each layer l:  cache.append(l, s, n, {k, DType::kF32}, {v, DType::kF32});   // k, v [n, Hkv, D]
//                      tq::attend(cache, l, query);                                   // attention.h
//
// Tokens are quantized on write (append). With window R > 0 the R most recent tokens of every
// sequence are kept in float32 and encoded when they leave the window. A sequence's token p of
// layer l is either encoded (p < n_encoded, page p / page_tokens, slot p % page_tokens) or in the
// window (slot p % R of the sequence's float ring).
//
// Contiguous storage is the paged layout with one page of max_seq_len tokens per sequence: every
// (sequence, KV head) is then one contiguous codes array followed by one scalars array.
//
// Errors: tq::Error; a failed call leaves the cache exactly as it was (nothing half-appended).
// Thread safety: const methods (attention, views, accounting) may run concurrently; append, add and
// remove need exclusive access.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "turboquant/codec.h"
#include "turboquant/kv/page_allocator.h"
#include "turboquant/layout.h"
#include "turboquant/npy.h"  // tq::DType (kF32, kF16, kBF16 are the ones accepted here)

namespace tq {

enum class KvStorage : uint8_t { kPaged = 0, kContiguous = 1 };

struct KvCacheConfig {
  int n_layers = 1;
  int n_kv_heads = 1;
  int head_dim = 128;
  // KV codec for every layer (parse_kv_codec: "fp16", "tq3", "k4v3", "k=tq4,v=fp16", "k3.5v2.5").
  std::string codec = "fp16";
  // Per-layer override: the first and last edge_layers layers use edge_codec (e.g. vLLM keeps 2+2
  // layers unquantized). layer_codecs, when not empty, gives every layer's codec and wins over both.
  int edge_layers = 0;
  std::string edge_codec = "fp16";
  std::vector<std::string> layer_codecs;
  KvStorage storage = KvStorage::kPaged;
  int page_tokens = 16;  // paged: tokens per page
  int num_pages = 0;     // paged: pages in the pool (each layer's K and V pools hold this many)
  int max_seqs = 0;      // contiguous: sequence slots (required); paged: 0 = no limit
  int max_seq_len = 0;   // contiguous: tokens per sequence (required); paged: 0 = no limit
  int window = 0;        // R: most recent tokens kept in float32 (0 = every token is encoded)
  // V codes of the layers whose V codec is single-part TurboQuant-mse (tq1..tq4) stored in token
  // quads (layout.h, quad_pos): the layout of the CUDA int8-PV decode (DecodeShape::v_quads). Needs
  // head_dim % 64 == 0 and page_tokens (contiguous: max_seq_len) % 16 == 0, else
  // kInvalidArgument; other layers keep rows. Attention results are the same as with rows; the CPU
  // engine turns whole blocks back into rows every step (bit-matrix transposes, kv_read.cpp):
  // ~1.2-1.3x the CPU attention time of rows (bench_attention BM_Attend/{3,4,5}/16384/1/{0,1}).
  bool v_quads = false;
};

// A read-only [n, Hkv, D] tensor: element (t, h, i) at data + t*token_stride + h*head_stride + i
// (strides in elements; 0 means dense: head_stride = D, token_stride = Hkv*D).
struct KvInput {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t token_stride = 0;
  int64_t head_stride = 0;
};

struct KvMemory {
  size_t bytes_used = 0;       // pages in use (all layers, K and V) + windows of live sequences
  size_t bytes_reserved = 0;   // pools + windows of all allocated sequence slots
  size_t pages_used = 0, pages_total = 0;
  size_t window_bytes = 0;     // part of bytes_used spent on float32 windows
  double bytes_per_token = 0;  // encoded bytes of one token, all layers, K + V, all KV heads
};

// Raw views for attention kernels (valid until the next non-const call).
struct KvLayerView {
  const Codec* k_codec = nullptr;
  const Codec* v_codec = nullptr;
  KvPageLayout k_layout{}, v_layout{};
  const uint8_t* k_pool = nullptr;  // page p at k_pool + p * k_layout.page_bytes()
  const uint8_t* v_pool = nullptr;
};
struct KvSeqView {
  int n_tokens = 0;                  // tokens appended to this layer
  int n_encoded = 0;                 // tokens [0, n_encoded) live in pages
  const int32_t* pages = nullptr;    // page ids, token p in pages[p / page_tokens]
  int n_pages = 0;
  const float* k_window = nullptr;   // ring [window][Hkv][D]: token p >= n_encoded at slot p % window
  const float* v_window = nullptr;
};

class KvCache {
 public:
  explicit KvCache(const KvCacheConfig& cfg);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheConfig& config() const { return cfg_; }
  int n_layers() const { return cfg_.n_layers; }
  int n_kv_heads() const { return cfg_.n_kv_heads; }
  int head_dim() const { return cfg_.head_dim; }
  int window() const { return cfg_.window; }
  int page_tokens() const { return page_tokens_; }
  const Codec& k_codec(int layer) const;
  const Codec& v_codec(int layer) const;

  // Returns a new sequence id (the lowest free slot). Throws kOutOfMemory when every slot is taken.
  int add_sequence();
  // Frees the sequence's pages and its slot. Throws kOutOfRange for an unknown id.
  void remove_sequence(int seq);
  bool has_sequence(int seq) const;
  int seq_len(int layer, int seq) const;
  std::vector<int> sequences() const;  // live ids, ascending

  // Appends n tokens of one layer: k, v [n, Hkv, D] (float32 / float16 / bfloat16). Quantizes on
  // write; tokens leaving the window are encoded. Throws (cache unchanged) on a bad layer/sequence
  // (kOutOfRange), bad shape/dtype/non-finite value (kInvalidArgument), an exhausted page pool or a
  // full sequence (kOutOfMemory).
  void append(int layer, int seq, int n, const KvInput& k, const KvInput& v);

  KvMemory memory() const;
  // Encoded bytes of one token in one layer, K + V, all KV heads.
  size_t bytes_per_token(int layer) const;
  KvLayerView layer_view(int layer) const;
  KvSeqView seq_view(int layer, int seq) const;
  const PageAllocator& allocator() const { return alloc_; }

  // Checks layer / sequence ids (kOutOfRange with the offending value).
  void check_layer(int layer) const;
  void check_seq(int seq) const;

 private:
  struct Layer;
  struct Seq;
  KvCacheConfig cfg_;
  int page_tokens_ = 0;
  int max_pages_per_seq_ = 0;  // 0: unlimited
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::unique_ptr<Seq>> seqs_;  // slot -> sequence (nullptr: free slot)
  PageAllocator alloc_;
};

// Builds the per-layer KV codec list of a config (layer_codecs, else edge/base rule), for tools
// that want to print it. Throws on a bad codec string naming the layer.
std::vector<KvCodecSpec> kv_layer_codecs(const KvCacheConfig& cfg);

}  // namespace tq
