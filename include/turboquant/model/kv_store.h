// turboquant/model/kv_store.h — the KV cache seen by the forward pass, as an interface so that
// any cache (exact, codec-compressed, the project's paged cache, a fused attention engine) plugs in.
//
// Per layer, a store holds K (after RoPE) and V rows of every position so far, and computes causal
// attention of new queries over them. The model calls, per layer and per batch of n new tokens:
//   append(layer, k, v, n);  attend(layer, q, n, out);
// so a store may compress on append and attend on whatever it kept: CodecKvStore decodes every row
// and runs attention_ref (the reference), KvCacheStore attends on the codes with the fused engine
// tq::attend (turboquant/attention.h) or, selectably, with tq::attend_reference.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "turboquant/codec.h"
#include "turboquant/kv_cache.h"

namespace tq::model {

struct KvShape {
  int n_layer = 0;
  int n_head = 0;      // query heads (Hq)
  int n_kv_head = 0;   // KV heads (Hkv); Hq % Hkv == 0, query head h reads KV head h / (Hq / Hkv)
  int head_dim = 0;
  float scale = 0;     // attention score scale, 1/sqrt(head_dim) for llama
  void validate() const;  // throws kInvalidArgument on inconsistent values
};

class KvStore {
 public:
  explicit KvStore(const KvShape& s);
  virtual ~KvStore() = default;
  const KvShape& shape() const { return shape_; }

  // Appends n positions to `layer`: k, v [n, Hkv, head_dim] (keys after RoPE).
  virtual void append(int layer, const float* k, const float* v, int n) = 0;
  // Causal attention of the queries of the last n appended positions of `layer` over all stored
  // positions: q [n, Hq, head_dim] -> out [n, Hq, head_dim]; query i sees positions
  // [0, length - n + i]. n = 1 is a decode step.
  virtual void attend(int layer, const float* q, int n, float* out) const = 0;
  virtual int length(int layer) const = 0;  // positions stored in `layer`
  virtual void clear() = 0;                 // forget every position (a new sequence)
  // Bytes stored per position, all layers, K and V together.
  virtual size_t bytes_per_token() const = 0;
  virtual std::string name() const = 0;

 protected:
  void check_layer(int layer) const;
  KvShape shape_;
};

// The reference: fp32 rows, attention_ref.
class ExactKvStore final : public KvStore {
 public:
  explicit ExactKvStore(const KvShape& s);
  void append(int layer, const float* k, const float* v, int n) override;
  void attend(int layer, const float* q, int n, float* out) const override;
  int length(int layer) const override;
  void clear() override;
  size_t bytes_per_token() const override;
  std::string name() const override { return "fp32 (exact)"; }

 private:
  std::vector<std::vector<float>> k_, v_;  // per layer: [len, Hkv, hd]
};

// Every K and V row of one token and head is encoded with a tq::Codec (dimension head_dim) on
// append; attention decodes the stored codes and runs attention_ref on them (O(length) decodes per
// call). That is the reference quality of a compressed cache, kept as the definition the fused
// path (KvCacheStore with KvAttention::kFused) is tested against.
class CodecKvStore final : public KvStore {
 public:
  CodecKvStore(const KvShape& s, const KvCodecSpec& spec);
  void append(int layer, const float* k, const float* v, int n) override;
  void attend(int layer, const float* q, int n, float* out) const override;
  int length(int layer) const override;
  void clear() override;
  size_t bytes_per_token() const override;
  std::string name() const override { return spec_.name(); }

  const Codec& k_codec() const { return *kc_; }
  const Codec& v_codec() const { return *vc_; }
  // Decoded rows of `layer` (what attention sees), [len, Hkv, hd] each; for tests and tools.
  void decode_layer(int layer, std::vector<float>& k, std::vector<float>& v) const;

 private:
  KvCodecSpec spec_;
  std::shared_ptr<const Codec> kc_, vc_;
  std::vector<std::vector<uint8_t>> kcodes_, vcodes_;  // per layer: [len, Hkv, code_size]
};

// How KvCacheStore attends: the fused engine tq::attend (scores the codes, float32, SIMD, threads)
// or tq::attend_reference (decodes every stored token, double accumulation).
enum class KvAttention : uint8_t { kFused = 0, kReference = 1 };
KvAttention parse_kv_attention(const std::string& s);  // "fused" | "reference"; else kInvalidArgument
const char* kv_attention_name(KvAttention a);

// The project's cache (turboquant/kv_cache.h: pages, per-layer codecs, float window) holding one
// sequence. `cfg` supplies codec, edge_layers / edge_codec, layer_codecs, window and page_tokens;
// the shape fields come from `s`, and the page pool is sized for `capacity` tokens (appending more
// throws kOutOfMemory and leaves the store unchanged).
class KvCacheStore final : public KvStore {
 public:
  KvCacheStore(const KvShape& s, const KvCacheConfig& cfg, int capacity,
               KvAttention attn = KvAttention::kFused);
  void append(int layer, const float* k, const float* v, int n) override;
  void attend(int layer, const float* q, int n, float* out) const override;
  int length(int layer) const override;
  void clear() override;
  size_t bytes_per_token() const override;
  std::string name() const override;
  const KvCache& cache() const { return *cache_; }
  KvAttention attention() const { return attn_; }

 private:
  std::unique_ptr<KvCache> cache_;
  int seq_ = -1;
  KvAttention attn_;
};

// How make_kv_store builds a store: "codec" (CodecKvStore, reference attention only), "cache"
// (KvCacheStore, where the edge layers, window, capacity and attn apply), or "auto": the cache,
// except the codec store for attn "reference" without edge layers or window. "fp32" / "exact" is
// always the ExactKvStore.
struct KvStoreOptions {
  std::string kind = "auto";
  int capacity = 4096;           // cache: tokens the page pool holds
  int edge_layers = 0;           // cache: first/last layers kept in edge_codec
  std::string edge_codec = "fp16";
  int window = 0;                // cache: most recent tokens kept in float32
  std::string attn = "fused";    // "fused" (tq::attend) or "reference"; "codec" + "fused" is an error
  bool v_quads = false;          // cache, cuda: V codes in token quads (KvCacheConfig::v_quads; on CUDA
                                 // the int8-PV decode kernel, DecodeShape::v_quads)
};

// "fp32" / "exact" -> ExactKvStore; any other KV codec string (tq::parse_kv_codec) -> the store
// that opt.kind names.
std::unique_ptr<KvStore> make_kv_store(const KvShape& s, const std::string& kv_codec, const KvStoreOptions& opt = {});

}  // namespace tq::model
