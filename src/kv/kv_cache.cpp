// src/kv/kv_cache.cpp — the compressed KV cache: configuration, sequences, append (quantize on
// write, float window), memory accounting. Attention lives in attention_*.cpp.
#include "turboquant/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include "kv/dtype_io.h"
#include "turboquant/error.h"
#include "turboquant/pack.h"

namespace tq {

namespace {

// 64-byte aligned, with 64 bytes of slack after the end so that SIMD kernels may load a full
// 16-byte group past the last token's codes without leaving the allocation.
struct AlignedBytes {
  uint8_t* p = nullptr;
  size_t n = 0;
  explicit AlignedBytes(size_t bytes) : n(bytes) {
    const size_t alloc = (bytes + 64 + 63) / 64 * 64;
    p = static_cast<uint8_t*>(std::aligned_alloc(64, alloc));
    if (!p) throw std::bad_alloc();
    std::memset(p + bytes, 0, alloc - bytes);
  }
  ~AlignedBytes() { std::free(p); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
};

KvPageLayout page_layout(const Codec& c, int page_tokens, int heads, const char* which, int layer) {
  const uint64_t hb = (uint64_t(page_tokens) * (c.codes_bytes() + c.scalar_bytes()) + 15u) & ~uint64_t(15);
  TQ_CHECK_ARG(hb * uint64_t(heads) < (uint64_t(1) << 32),
               "layer {} {}: a page of {} tokens x {} heads x {} bytes exceeds 4 GiB (KvPageLayout offsets are 32-bit)",
               layer, which, page_tokens, heads, c.code_size());
  return KvPageLayout{uint32_t(page_tokens), uint32_t(heads), uint32_t(c.codes_bytes()), uint32_t(c.scalar_bytes())};
}

int pool_pages(const KvCacheConfig& c) {
  TQ_CHECK_ARG(c.n_layers >= 1, "KV cache: n_layers must be >= 1, got {}", c.n_layers);
  TQ_CHECK_ARG(c.n_kv_heads >= 1, "KV cache: n_kv_heads must be >= 1, got {}", c.n_kv_heads);
  TQ_CHECK_ARG(c.head_dim >= 1 && c.head_dim <= 65536, "KV cache: head_dim must be in [1, 65536], got {}", c.head_dim);
  TQ_CHECK_ARG(c.window >= 0, "KV cache: window must be >= 0, got {}", c.window);
  if (c.storage == KvStorage::kContiguous) {
    TQ_CHECK_ARG(c.max_seqs >= 1, "KV cache (contiguous): max_seqs must be >= 1, got {}", c.max_seqs);
    TQ_CHECK_ARG(c.max_seq_len >= 1, "KV cache (contiguous): max_seq_len must be >= 1, got {}", c.max_seq_len);
    return c.max_seqs;
  }
  TQ_CHECK_ARG(c.storage == KvStorage::kPaged, "KV cache: unknown storage kind {}", int(c.storage));
  TQ_CHECK_ARG(c.page_tokens >= 1, "KV cache (paged): page_tokens must be >= 1, got {}", c.page_tokens);
  TQ_CHECK_ARG(c.num_pages >= 1, "KV cache (paged): num_pages must be >= 1, got {}", c.num_pages);
  TQ_CHECK_ARG(c.max_seqs >= 0 && c.max_seq_len >= 0, "KV cache (paged): max_seqs / max_seq_len must be >= 0");
  return c.num_pages;
}

}  // namespace

struct KvCache::Layer {
  KvCodecSpec spec;
  std::shared_ptr<const Codec> kc, vc;
  KvPageLayout kl{}, vl{};
  std::unique_ptr<AlignedBytes> k_pool, v_pool;
};

struct KvCache::Seq {
  std::vector<int32_t> pages;
  std::vector<int> len;       // per layer
  std::vector<float> window;  // [layer][K|V][R][Hkv][D]
};

std::vector<KvCodecSpec> kv_layer_codecs(const KvCacheConfig& cfg) {
  std::vector<KvCodecSpec> out;
  if (!cfg.layer_codecs.empty()) {
    TQ_CHECK_ARG(int(cfg.layer_codecs.size()) == cfg.n_layers, "KV cache: layer_codecs has {} entries for {} layers",
                 cfg.layer_codecs.size(), cfg.n_layers);
    for (int l = 0; l < cfg.n_layers; ++l) {
      try {
        out.push_back(parse_kv_codec(cfg.layer_codecs[size_t(l)]));
      } catch (const Error& e) {
        TQ_FAIL(kInvalidArgument, "KV cache layer {}: {}", l, e.what());
      }
    }
    return out;
  }
  TQ_CHECK_ARG(cfg.edge_layers >= 0, "KV cache: edge_layers must be >= 0, got {}", cfg.edge_layers);
  const KvCodecSpec base = parse_kv_codec(cfg.codec);
  const KvCodecSpec edge = cfg.edge_layers > 0 ? parse_kv_codec(cfg.edge_codec) : base;
  for (int l = 0; l < cfg.n_layers; ++l)
    out.push_back(l < cfg.edge_layers || l >= cfg.n_layers - cfg.edge_layers ? edge : base);
  return out;
}

KvCache::KvCache(const KvCacheConfig& cfg) : cfg_(cfg), alloc_(pool_pages(cfg)) {
  const bool contiguous = cfg.storage == KvStorage::kContiguous;
  page_tokens_ = contiguous ? cfg.max_seq_len : cfg.page_tokens;
  TQ_CHECK_ARG(!cfg.v_quads || (cfg.head_dim % 64 == 0 && page_tokens_ % 16 == 0),
               "KV cache: v_quads needs head_dim % 64 == 0 and {} % 16 == 0 (head_dim {}, {} {})",
               contiguous ? "max_seq_len" : "page_tokens", cfg.head_dim, contiguous ? "max_seq_len" : "page_tokens",
               page_tokens_);
  max_pages_per_seq_ = contiguous ? 1 : 0;
  const std::vector<KvCodecSpec> specs = kv_layer_codecs(cfg);
  std::map<std::string, std::shared_ptr<const Codec>> made;  // equal specs share one Codec object
  auto codec_for = [&](const CodecSpec& s) {
    auto& slot = made[s.name()];
    if (!slot) slot = Codec::create(s, cfg.head_dim);
    return slot;
  };
  for (int l = 0; l < cfg.n_layers; ++l) {
    auto L = std::make_unique<Layer>();
    L->spec = specs[size_t(l)];
    L->kc = codec_for(L->spec.k);
    L->vc = codec_for(L->spec.v);
    L->kl = page_layout(*L->kc, page_tokens_, cfg.n_kv_heads, "K", l);
    L->vl = page_layout(*L->vc, page_tokens_, cfg.n_kv_heads, "V", l);
    const CodecSpec& vs = L->spec.v;
    if (cfg.v_quads && vs.id == CodecId::kTqMse && !vs.fractional && quad_fits(uint32_t(cfg.head_dim), vs.bits))
      L->vl.quad_bits = uint32_t(vs.bits);
    const size_t np = size_t(alloc_.num_pages());
    L->k_pool = std::make_unique<AlignedBytes>(np * L->kl.page_bytes());
    L->v_pool = std::make_unique<AlignedBytes>(np * L->vl.page_bytes());
    layers_.push_back(std::move(L));
  }
}

KvCache::~KvCache() = default;

void KvCache::check_layer(int layer) const {
  TQ_CHECK(layer >= 0 && layer < cfg_.n_layers, kOutOfRange, "layer {} out of range [0, {})", layer, cfg_.n_layers);
}

void KvCache::check_seq(int seq) const {
  TQ_CHECK(seq >= 0 && size_t(seq) < seqs_.size() && seqs_[size_t(seq)], kOutOfRange,
           "sequence {} does not exist in this KV cache", seq);
}

const Codec& KvCache::k_codec(int layer) const { check_layer(layer); return *layers_[size_t(layer)]->kc; }
const Codec& KvCache::v_codec(int layer) const { check_layer(layer); return *layers_[size_t(layer)]->vc; }

int KvCache::add_sequence() {
  size_t slot = 0;
  while (slot < seqs_.size() && seqs_[slot]) ++slot;
  const int limit = cfg_.max_seqs;  // 0 (paged only): no limit
  TQ_CHECK(limit == 0 || int(slot) < limit, kOutOfMemory, "KV cache: all {} sequence slots are in use", limit);
  auto s = std::make_unique<Seq>();
  s->len.assign(size_t(cfg_.n_layers), 0);
  s->window.assign(size_t(cfg_.n_layers) * 2 * size_t(cfg_.window) * size_t(cfg_.n_kv_heads) * size_t(cfg_.head_dim),
                   0.0f);
  if (slot == seqs_.size()) seqs_.emplace_back();
  seqs_[slot] = std::move(s);
  return int(slot);
}

void KvCache::remove_sequence(int seq) {
  check_seq(seq);
  auto& s = seqs_[size_t(seq)];
  alloc_.release(s->pages.data(), s->pages.size());
  s.reset();
}

bool KvCache::has_sequence(int seq) const { return seq >= 0 && size_t(seq) < seqs_.size() && seqs_[size_t(seq)]; }

int KvCache::seq_len(int layer, int seq) const {
  check_layer(layer);
  check_seq(seq);
  return seqs_[size_t(seq)]->len[size_t(layer)];
}

std::vector<int> KvCache::sequences() const {
  std::vector<int> ids;
  for (size_t i = 0; i < seqs_.size(); ++i)
    if (seqs_[i]) ids.push_back(int(i));
  return ids;
}

void KvCache::append(int layer, int seq, int n, const KvInput& k, const KvInput& v) {
  check_layer(layer);
  check_seq(seq);
  TQ_CHECK_ARG(n >= 0, "append: token count must be >= 0, got {}", n);
  if (n == 0) return;
  const int H = cfg_.n_kv_heads, D = cfg_.head_dim, R = cfg_.window;
  const KvInput* in[2] = {&k, &v};
  const char* names[2] = {"append: k", "append: v"};
  for (int w = 0; w < 2; ++w) {
    TQ_CHECK_ARG(in[w]->data != nullptr, "{} is null", names[w]);
    kv::check_float_dtype(in[w]->dtype, names[w]);
    TQ_CHECK_ARG(in[w]->token_stride >= 0 && in[w]->head_stride >= 0, "{}: negative stride", names[w]);
  }
  Layer& L = *layers_[size_t(layer)];
  Seq& s = *seqs_[size_t(seq)];
  const int len = s.len[size_t(layer)];
  const int64_t cap = cfg_.storage == KvStorage::kContiguous ? cfg_.max_seq_len
                      : cfg_.max_seq_len > 0                  ? cfg_.max_seq_len
                                                              : int64_t(INT32_MAX) - 1;
  TQ_CHECK(int64_t(len) + n <= cap, kOutOfMemory, "append: sequence {} would hold {} tokens, the cache allows {}", seq,
           int64_t(len) + n, cap);

  // 1. The new tokens as float32 [n][H][D] (K, then V).
  const size_t row = size_t(H) * D;
  std::vector<float> fresh[2];
  for (int w = 0; w < 2; ++w) {
    const int64_t hs = in[w]->head_stride ? in[w]->head_stride : D;
    const int64_t ts = in[w]->token_stride ? in[w]->token_stride : int64_t(H) * D;
    fresh[w].resize(size_t(n) * row);
    for (int t = 0; t < n; ++t)
      for (int h = 0; h < H; ++h)
        kv::load_row(in[w]->data, in[w]->dtype, t * ts + h * hs, D, &fresh[w][size_t(t) * row + size_t(h) * D]);
  }

  // 2. Tokens [enc_old, enc_new) get encoded: from the window (positions < len) or the new input.
  const int enc_old = std::max(0, len - R), enc_new = std::max(0, len + n - R);
  const int m = enc_new - enc_old;
  auto window_row = [&](int w, int pos) {
    return &s.window[((size_t(layer) * 2 + size_t(w)) * size_t(R) + size_t(pos % R)) * row];
  };
  std::vector<uint8_t> codes[2];
  const Codec* codec[2] = {L.kc.get(), L.vc.get()};
  for (int w = 0; w < 2; ++w) {
    if (m == 0) break;
    std::vector<float> x(size_t(m) * row);
    for (int i = 0; i < m; ++i) {
      const int pos = enc_old + i;
      const float* src = pos < len ? window_row(w, pos) : &fresh[w][size_t(pos - len) * row];
      std::memcpy(&x[size_t(i) * row], src, row * 4);
    }
    codes[w].resize(size_t(m) * H * codec[w]->code_size());
    try {
      codec[w]->encode(x.data(), size_t(m) * H, size_t(D), codes[w].data());  // validates all, then writes
    } catch (const Error& e) {
      TQ_FAIL(kInvalidArgument, "append (layer {}, sequence {}, {}): {}", layer, seq, w ? "v" : "k", e.what());
    }
  }
  // Tokens that stay in the window are checked here (encode checked the others).
  for (int w = 0; w < 2; ++w)
    for (size_t i = 0; i < fresh[w].size(); ++i)
      TQ_CHECK_ARG(std::isfinite(fresh[w][i]), "append (layer {}, sequence {}): {} token {} has a non-finite value",
                   layer, seq, w ? "v" : "k", i / row);

  std::vector<uint8_t> quad_tmp(L.vl.quad_bits ? size_t(cfg_.head_dim) : 0);  // unpacked codes (quad V)
  // 3. Pages (all or nothing), then commit — nothing below throws.
  const int64_t pages_needed = (int64_t(enc_new) + page_tokens_ - 1) / page_tokens_;
  if (max_pages_per_seq_ > 0)
    TQ_CHECK(pages_needed <= max_pages_per_seq_, kOutOfMemory, "append: sequence {} is full", seq);
  const int64_t extra = pages_needed - int64_t(s.pages.size());
  if (extra > 0) alloc_.allocate(int32_t(extra), &s.pages);

  const KvPageLayout* lay[2] = {&L.kl, &L.vl};
  uint8_t* pool[2] = {L.k_pool->p, L.v_pool->p};
  for (int w = 0; w < 2; ++w) {
    const size_t cs = codec[w]->code_size(), cb = lay[w]->codes_bytes, sb = lay[w]->scalar_bytes;
    const int qb = int(lay[w]->quad_bits);
    for (int i = 0; i < m; ++i) {
      const int pos = enc_old + i;
      uint8_t* page = pool[w] + size_t(s.pages[size_t(pos / page_tokens_)]) * lay[w]->page_bytes();
      const uint32_t slot = uint32_t(pos % page_tokens_);
      for (int h = 0; h < H; ++h) {
        const uint8_t* src = &codes[w][(size_t(i) * H + h) * cs];
        if (qb) {  // token quads: the token's own bits of its 16-token block
          unpack_codes(src, uint32_t(cfg_.head_dim), qb, quad_tmp.data());
          quad_put_token(quad_tmp.data(), uint32_t(cfg_.head_dim), qb, int(slot % 16),
                         page + lay[w]->codes_offset(uint32_t(h), slot & ~15u));
        } else {
          std::memcpy(page + lay[w]->codes_offset(uint32_t(h), slot), src, cb);
        }
        if (sb) std::memcpy(page + lay[w]->scalars_offset(uint32_t(h), slot), src + cb, sb);
      }
    }
    for (int pos = std::max(len, enc_new); pos < len + n; ++pos)
      std::memcpy(window_row(w, pos), &fresh[w][size_t(pos - len) * row], row * 4);
  }
  s.len[size_t(layer)] = len + n;
}

size_t KvCache::bytes_per_token(int layer) const {
  check_layer(layer);
  const Layer& L = *layers_[size_t(layer)];
  return size_t(cfg_.n_kv_heads) * (L.kc->code_size() + L.vc->code_size());
}

KvMemory KvCache::memory() const {
  KvMemory m;
  size_t page_all_layers = 0;
  for (int l = 0; l < cfg_.n_layers; ++l) {
    page_all_layers += size_t(layers_[size_t(l)]->kl.page_bytes()) + layers_[size_t(l)]->vl.page_bytes();
    m.bytes_per_token += double(bytes_per_token(l));
  }
  m.pages_total = size_t(alloc_.num_pages());
  m.pages_used = size_t(alloc_.num_used());
  const size_t win_per_seq = size_t(cfg_.n_layers) * 2 * size_t(cfg_.window) * cfg_.n_kv_heads * cfg_.head_dim * 4;
  size_t live = 0;
  for (const auto& s : seqs_) live += s ? 1 : 0;
  m.window_bytes = live * win_per_seq;
  m.bytes_used = m.pages_used * page_all_layers + m.window_bytes;
  m.bytes_reserved = m.pages_total * page_all_layers + seqs_.size() * win_per_seq;
  return m;
}

KvLayerView KvCache::layer_view(int layer) const {
  check_layer(layer);
  const Layer& L = *layers_[size_t(layer)];
  return KvLayerView{L.kc.get(), L.vc.get(), L.kl, L.vl, L.k_pool->p, L.v_pool->p};
}

KvSeqView KvCache::seq_view(int layer, int seq) const {
  check_layer(layer);
  check_seq(seq);
  const Seq& s = *seqs_[size_t(seq)];
  KvSeqView v;
  v.n_tokens = s.len[size_t(layer)];
  v.n_encoded = std::max(0, v.n_tokens - cfg_.window);
  v.pages = s.pages.data();
  v.n_pages = int(s.pages.size());
  if (cfg_.window > 0) {
    const size_t ring = size_t(cfg_.window) * cfg_.n_kv_heads * cfg_.head_dim;
    v.k_window = s.window.data() + size_t(layer) * 2 * ring;
    v.v_window = v.k_window + ring;
  }
  return v;
}

}  // namespace tq
