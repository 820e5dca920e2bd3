// turboquant/turboquant.hpp — header-only C++ RAII wrapper over the C ABI (turboquant.h), for
// programs that link only the shared library: handles are freed by destructors, failures throw
// turboquant::Error carrying the C status and tq_last_error().
//
//   turboquant::KvCache cache(turboquant::KvCache::Config{}.layers(32).kv_heads(8).head_dim(128)
//                                 .codec("k4v3").pages(4096));
//   int s = cache.add_sequence();
//   cache.append(layer, s, n, k, v);                  // float [n, Hkv, D]
//   cache.attend(layer, {s}, 32, q, out);             // float q, out [1, Hq, D]
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "turboquant/turboquant.h"

namespace turboquant {

class Error : public std::runtime_error {
 public:
  Error(tq_status s, const std::string& msg) : std::runtime_error(msg), status_(s) {}
  tq_status status() const noexcept { return status_; }

 private:
  tq_status status_;
};

inline void check(tq_status s) {
  if (s != TQ_OK) throw Error(s, std::string(tq_status_name(s)) + ": " + tq_last_error());
}

class Codec {
 public:
  Codec(const std::string& spec, int dim) { check(tq_codec_create(spec.c_str(), dim, &h_)); }
  ~Codec() { tq_codec_destroy(h_); }
  Codec(Codec&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Codec& operator=(Codec&& o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;

  size_t code_size() const {
    size_t n = 0;
    check(tq_codec_code_size(h_, &n));
    return n;
  }
  int dim() const {
    int d = 0;
    check(tq_codec_dim(h_, &d));
    return d;
  }
  std::string name() const {
    char buf[256];
    check(tq_codec_name(h_, buf, sizeof(buf)));
    return buf;
  }
  // x: n * dim floats -> n * code_size() bytes.
  std::vector<uint8_t> encode(const float* x, size_t n) const {
    std::vector<uint8_t> codes(n * code_size());
    check(tq_codec_encode(h_, x, n, 0, codes.data()));
    return codes;
  }
  std::vector<float> decode(const std::vector<uint8_t>& codes) const {
    const size_t n = codes.size() / code_size();
    std::vector<float> y(n * size_t(dim()));
    check(tq_codec_decode(h_, codes.data(), n, y.data(), 0));
    return y;
  }
  const tq_codec* handle() const { return h_; }

 private:
  tq_codec* h_ = nullptr;
};

class KvCache {
 public:
  // Fluent wrapper of tq_kv_cache_config (defaults from tq_kv_cache_config_init).
  struct Config {
    tq_kv_cache_config c;
    std::string codec_ = "fp16", edge_ = "fp16";
    Config() { tq_kv_cache_config_init(&c); }
    Config& layers(int n) { c.n_layers = n; return *this; }
    Config& kv_heads(int n) { c.n_kv_heads = n; return *this; }
    Config& head_dim(int n) { c.head_dim = n; return *this; }
    Config& codec(std::string s) { codec_ = std::move(s); return *this; }
    Config& edge(int layers, std::string s) { c.edge_layers = layers; edge_ = std::move(s); return *this; }
    Config& pages(int n, int page_tokens = 16) { c.num_pages = n; c.page_tokens = page_tokens; return *this; }
    Config& contiguous(int max_seqs, int max_seq_len) {
      c.contiguous = 1; c.max_seqs = max_seqs; c.max_seq_len = max_seq_len; return *this;
    }
    Config& window(int n) { c.window = n; return *this; }
  };

  explicit KvCache(const Config& cfg) {
    tq_kv_cache_config c = cfg.c;
    c.codec = cfg.codec_.c_str();
    c.edge_codec = cfg.edge_.c_str();
    check(tq_kv_cache_create(&c, &h_));
  }
  ~KvCache() { tq_kv_cache_destroy(h_); }
  KvCache(KvCache&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  KvCache& operator=(KvCache&& o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int add_sequence() {
    int s = -1;
    check(tq_kv_cache_add_sequence(h_, &s));
    return s;
  }
  void remove_sequence(int seq) { check(tq_kv_cache_remove_sequence(h_, seq)); }
  int seq_len(int layer, int seq) const {
    int n = 0;
    check(tq_kv_cache_seq_len(h_, layer, seq, &n));
    return n;
  }
  // k, v: [n, Hkv, D] of dtype, dense unless strides are given (elements).
  void append(int layer, int seq, int n, const void* k, const void* v, tq_dtype dtype = TQ_F32,
              int64_t token_stride = 0, int64_t head_stride = 0) {
    check(tq_kv_cache_append(h_, layer, seq, n, k, v, dtype, token_stride, head_stride));
  }
  tq_kv_memory memory() const {
    tq_kv_memory m{};
    check(tq_kv_cache_memory(h_, &m));
    return m;
  }
  // Dense float32 q / out [rows, Hq, D]; q_lens empty: one new token per sequence.
  void attend(int layer, const std::vector<int>& seqs, int heads_q, const float* q, float* out,
              const std::vector<int>& q_lens = {}, float scale = 0, bool reference = false,
              bool fp32_scores = false) const {
    tq_attend_args a;
    tq_attend_args_init(&a);
    a.seqs = seqs.data();
    a.q_lens = q_lens.empty() ? nullptr : q_lens.data();
    a.batch = int(seqs.size());
    a.heads_q = heads_q;
    a.q = q;
    a.out = out;
    a.scale = scale;
    a.fp32_scores = fp32_scores ? 1 : 0;
    check(reference ? tq_kv_cache_attend_reference(h_, layer, &a) : tq_kv_cache_attend(h_, layer, &a));
  }
  // Full control (dtypes, strides, threads).
  void attend(int layer, const tq_attend_args& a) const { check(tq_kv_cache_attend(h_, layer, &a)); }
  const tq_kv_cache* handle() const { return h_; }

 private:
  tq_kv_cache* h_ = nullptr;
};

}  // namespace turboquant
