// src/model/kv_store.cpp — exact and codec-compressed KV stores (contract: turboquant/model/kv_store.h).
#include "turboquant/model/kv_store.h"

#include "turboquant/model/cuda_kv_store.h"

#include <cmath>

#include "turboquant/attention.h"
#include "turboquant/error.h"
#include "turboquant/model/ops.h"

namespace tq::model {

void KvShape::validate() const {
  TQ_CHECK_ARG(n_layer > 0 && n_head > 0 && n_kv_head > 0 && head_dim > 0 && n_head % n_kv_head == 0,
               "kv store: bad shape (layers {}, heads {}, kv heads {}, head dim {})", n_layer, n_head, n_kv_head,
               head_dim);
  TQ_CHECK_ARG(std::isfinite(scale) && scale > 0, "kv store: attention scale {}", scale);
}

KvStore::KvStore(const KvShape& s) : shape_(s) { s.validate(); }

void KvStore::check_layer(int layer) const {
  TQ_CHECK(layer >= 0 && layer < shape_.n_layer, kOutOfRange, "kv store: layer {} outside [0, {})", layer,
           shape_.n_layer);
}

// ---- ExactKvStore ----------------------------------------------------------------------------

ExactKvStore::ExactKvStore(const KvShape& s) : KvStore(s), k_(size_t(s.n_layer)), v_(size_t(s.n_layer)) {}

void ExactKvStore::append(int layer, const float* k, const float* v, int n) {
  check_layer(layer);
  TQ_CHECK_ARG(n >= 0, "kv store: append of {} positions", n);
  const size_t row = size_t(shape_.n_kv_head) * shape_.head_dim;
  k_[size_t(layer)].insert(k_[size_t(layer)].end(), k, k + size_t(n) * row);
  v_[size_t(layer)].insert(v_[size_t(layer)].end(), v, v + size_t(n) * row);
}

void ExactKvStore::attend(int layer, const float* q, int n, float* out) const {
  check_layer(layer);
  const int len = length(layer);
  TQ_CHECK_ARG(n >= 0 && n <= len, "kv store: {} queries but {} positions stored", n, len);
  attention_ref(q, k_[size_t(layer)].data(), v_[size_t(layer)].data(), out, n, len, shape_.n_head,
                shape_.n_kv_head, shape_.head_dim, shape_.scale);
}

int ExactKvStore::length(int layer) const {
  check_layer(layer);
  return int(k_[size_t(layer)].size() / (size_t(shape_.n_kv_head) * shape_.head_dim));
}

void ExactKvStore::clear() {
  for (auto& x : k_) x.clear();
  for (auto& x : v_) x.clear();
}

size_t ExactKvStore::bytes_per_token() const {
  return size_t(shape_.n_layer) * shape_.n_kv_head * shape_.head_dim * 2 * sizeof(float);
}

// ---- CodecKvStore ----------------------------------------------------------------------------

CodecKvStore::CodecKvStore(const KvShape& s, const KvCodecSpec& spec)
    : KvStore(s), spec_(spec), kcodes_(size_t(s.n_layer)), vcodes_(size_t(s.n_layer)) {
  kc_ = Codec::create(spec.k, s.head_dim);
  vc_ = Codec::create(spec.v, s.head_dim);
}

void CodecKvStore::append(int layer, const float* k, const float* v, int n) {
  check_layer(layer);
  TQ_CHECK_ARG(n >= 0, "kv store: append of {} positions", n);
  const size_t rows = size_t(n) * shape_.n_kv_head;
  auto& kc = kcodes_[size_t(layer)];
  auto& vc = vcodes_[size_t(layer)];
  // Encode into temporaries first: a codec that throws (NaN input) leaves the store unchanged.
  std::vector<uint8_t> kb(rows * kc_->code_size()), vb(rows * vc_->code_size());
  kc_->encode(k, rows, size_t(shape_.head_dim), kb.data());
  vc_->encode(v, rows, size_t(shape_.head_dim), vb.data());
  kc.insert(kc.end(), kb.begin(), kb.end());
  vc.insert(vc.end(), vb.begin(), vb.end());
}

void CodecKvStore::decode_layer(int layer, std::vector<float>& k, std::vector<float>& v) const {
  check_layer(layer);
  const size_t rows = size_t(length(layer)) * shape_.n_kv_head;
  k.resize(rows * shape_.head_dim);
  v.resize(rows * shape_.head_dim);
  kc_->decode(kcodes_[size_t(layer)].data(), rows, k.data(), size_t(shape_.head_dim));
  vc_->decode(vcodes_[size_t(layer)].data(), rows, v.data(), size_t(shape_.head_dim));
}

// The reference: decodes every stored row and attends on the decoded values, O(length) decodes
// per call. KvCacheStore with fused attention must match it (tests/model/test_kv_store.cpp,
// tests/model/test_llama.cpp).
void CodecKvStore::attend(int layer, const float* q, int n, float* out) const {
  check_layer(layer);
  const int len = length(layer);
  TQ_CHECK_ARG(n >= 0 && n <= len, "kv store: {} queries but {} positions stored", n, len);
  std::vector<float> k, v;
  decode_layer(layer, k, v);
  attention_ref(q, k.data(), v.data(), out, n, len, shape_.n_head, shape_.n_kv_head, shape_.head_dim, shape_.scale);
}

int CodecKvStore::length(int layer) const {
  check_layer(layer);
  return int(kcodes_[size_t(layer)].size() / (size_t(shape_.n_kv_head) * kc_->code_size()));
}

void CodecKvStore::clear() {
  for (auto& x : kcodes_) x.clear();
  for (auto& x : vcodes_) x.clear();
}

size_t CodecKvStore::bytes_per_token() const {
  return size_t(shape_.n_layer) * shape_.n_kv_head * (kc_->code_size() + vc_->code_size());
}

// ---- KvCacheStore ----------------------------------------------------------------------------

namespace {
KvCacheConfig cache_config(const KvShape& s, KvCacheConfig cfg, int capacity) {
  TQ_CHECK_ARG(capacity >= 1, "kv cache store: capacity {} tokens", capacity);
  cfg.n_layers = s.n_layer;
  cfg.n_kv_heads = s.n_kv_head;
  cfg.head_dim = s.head_dim;
  cfg.storage = KvStorage::kPaged;
  if (cfg.page_tokens < 1) cfg.page_tokens = 16;
  cfg.num_pages = (capacity + cfg.page_tokens - 1) / cfg.page_tokens;
  cfg.max_seqs = 1;
  cfg.max_seq_len = capacity;
  return cfg;
}
}  // namespace

KvAttention parse_kv_attention(const std::string& s) {
  if (s == "fused") return KvAttention::kFused;
  TQ_CHECK_ARG(s == "reference", "kv attention '{}' (fused or reference)", s);
  return KvAttention::kReference;
}

const char* kv_attention_name(KvAttention a) { return a == KvAttention::kFused ? "fused" : "reference"; }

KvCacheStore::KvCacheStore(const KvShape& s, const KvCacheConfig& cfg, int capacity, KvAttention attn)
    : KvStore(s), cache_(std::make_unique<KvCache>(cache_config(s, cfg, capacity))), attn_(attn) {
  seq_ = cache_->add_sequence();
}

void KvCacheStore::append(int layer, const float* k, const float* v, int n) {
  check_layer(layer);
  TQ_CHECK_ARG(n >= 0, "kv store: append of {} positions", n);
  if (n == 0) return;
  cache_->append(layer, seq_, n, KvInput{k, DType::kF32, 0, 0}, KvInput{v, DType::kF32, 0, 0});
}

void KvCacheStore::attend(int layer, const float* q, int n, float* out) const {
  check_layer(layer);
  TQ_CHECK_ARG(n >= 1 && n <= length(layer), "kv store: {} queries but {} positions stored", n, length(layer));
  AttendQuery a;
  a.seqs = &seq_;
  a.q_lens = &n;
  a.batch = 1;
  a.heads_q = shape_.n_head;
  a.q = q;
  a.out = out;
  a.scale = shape_.scale;
  // The fused engine on the OpenMP threads that set_threads chose, but, like the matmuls
  // (ops.cpp), on the calling thread below ~4M multiply-adds: a decode step is far below, and a
  // fork/join per layer there made `tq generate` 8x slower on a busy 2-core machine (the idle
  // worker spins in libgomp between the steps' serial matmuls; 3.8 vs 30 tokens/s on the proxy
  // model, 28 tokens/s with one thread or OMP_WAIT_POLICY=passive).
  AttentionOptions opts;
  const int64_t work = int64_t(n) * shape_.n_head * length(layer) * shape_.head_dim;
  opts.threads = work > (int64_t(1) << 22) ? 0 : 1;
  if (attn_ == KvAttention::kFused) tq::attend(*cache_, layer, a, opts);
  else tq::attend_reference(*cache_, layer, a);
}

int KvCacheStore::length(int layer) const {
  check_layer(layer);
  return cache_->seq_len(layer, seq_);
}

void KvCacheStore::clear() {
  cache_->remove_sequence(seq_);
  seq_ = cache_->add_sequence();
}

size_t KvCacheStore::bytes_per_token() const {
  size_t b = 0;
  for (int l = 0; l < shape_.n_layer; ++l) b += cache_->bytes_per_token(l);
  return b;
}

std::string KvCacheStore::name() const {
  const KvCacheConfig& c = cache_->config();
  std::string n = parse_kv_codec(c.codec).name();
  if (c.edge_layers > 0) n += fmt::format(" (edge {}: {})", c.edge_layers, parse_kv_codec(c.edge_codec).name());
  if (c.window > 0) n += fmt::format(" (window {})", c.window);
  if (c.v_quads) n += " (V quads)";
  if (attn_ == KvAttention::kReference) n += " (reference attention)";
  return n;
}

std::unique_ptr<KvStore> make_kv_store(const KvShape& s, const std::string& kv_codec, const KvStoreOptions& opt) {
  const KvAttention attn = parse_kv_attention(opt.attn);
  if (kv_codec == "fp32" || kv_codec == "exact") return std::make_unique<ExactKvStore>(s);
  TQ_CHECK_ARG(opt.kind == "auto" || opt.kind == "codec" || opt.kind == "cache" || opt.kind == "cuda",
               "kv store kind '{}' (auto, codec, cache or cuda)", opt.kind);
  if (opt.kind == "cuda") {
    TQ_CHECK_ARG(opt.edge_layers == 0 && opt.window == 0 && attn == KvAttention::kFused,
                 "kv store 'cuda' has no edge layers, window or reference attention");
    return make_cuda_kv_store(s, kv_codec, opt.capacity, opt.v_quads);
  }
  const bool codec_store =
      opt.kind == "codec" || (opt.kind == "auto" && attn == KvAttention::kReference && opt.edge_layers == 0 && opt.window == 0 && !opt.v_quads);
  if (codec_store) {
    TQ_CHECK_ARG(opt.edge_layers == 0 && opt.window == 0 && !opt.v_quads,
                 "kv store 'codec' has no edge layers, window or V quads (use the 'cache' store)");
    TQ_CHECK_ARG(attn == KvAttention::kReference,
                 "kv store 'codec' decodes rows and has only reference attention (--attn reference, or the 'cache' store for fused)");
    return std::make_unique<CodecKvStore>(s, parse_kv_codec(kv_codec));
  }
  KvCacheConfig cfg;
  cfg.codec = kv_codec;
  cfg.edge_layers = opt.edge_layers;
  cfg.edge_codec = opt.edge_codec;
  cfg.window = opt.window;
  cfg.v_quads = opt.v_quads;
  return std::make_unique<KvCacheStore>(s, cfg, opt.capacity, attn);
}

}  // namespace tq::model
