// src/model/llama.cpp — llama config, weights and forward pass (structure: turboquant/model/llama.h).
#include "turboquant/model/llama.h"

#include <cmath>
#include <cstring>

#include "turboquant/error.h"
#include "turboquant/model/gguf.h"

namespace tq::model {
namespace {

using Ne = std::vector<int64_t>;

// Bounds that keep every index product far from overflow; real models sit well inside them and
// the tensor shapes (bounded by the file size) are checked against the config anyway.
constexpr int64_t kMaxDim = 1 << 16, kMaxLayers = 1024, kMaxHeads = 1024, kMaxFfn = 1 << 20, kMaxVocab = 1 << 22;

int get_dim(const gguf::File& f, const std::string& key, int64_t lo, int64_t hi, int64_t dflt = -1) {
  const int64_t v = dflt < 0 ? f.get_int(key) : f.get_int(key, dflt);
  TQ_CHECK_ARG(v >= lo && v <= hi, "{}: {} = {} (expected {}..{})", f.source(), key, v, lo, hi);
  return int(v);
}

std::vector<float> optional(const gguf::File& f, const std::string& name, const Ne& ne) {
  return f.find_tensor(name) ? f.tensor_f32(name, ne) : std::vector<float>{};
}

void add_bias(float* y, const std::vector<float>& b, int n, int width) {
  if (b.empty()) return;
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < width; ++i) y[int64_t(t) * width + i] += b[size_t(i)];
}

}  // namespace

LlamaConfig LlamaConfig::from_gguf(const gguf::File& f) {
  const std::string arch = f.get_string("general.architecture");
  TQ_CHECK(arch == "llama", kUnsupported, "{}: architecture '{}'; this runner reads 'llama'", f.source(), arch);
  LlamaConfig c;
  c.dim = get_dim(f, "llama.embedding_length", 1, kMaxDim);
  c.n_layer = get_dim(f, "llama.block_count", 1, kMaxLayers);
  c.ffn = get_dim(f, "llama.feed_forward_length", 1, kMaxFfn);
  c.n_head = get_dim(f, "llama.attention.head_count", 1, kMaxHeads);
  c.n_kv_head = get_dim(f, "llama.attention.head_count_kv", 1, kMaxHeads, c.n_head);
  TQ_CHECK_ARG(c.n_head % c.n_kv_head == 0, "{}: {} query heads are not a multiple of {} KV heads", f.source(),
               c.n_head, c.n_kv_head);
  const int64_t dflt_hd = c.dim % c.n_head == 0 ? c.dim / c.n_head : -1;
  TQ_CHECK_ARG(dflt_hd > 0 || f.find("llama.attention.key_length"),
               "{}: embedding length {} is not a multiple of {} heads and no key_length is given", f.source(), c.dim,
               c.n_head);
  c.head_dim = get_dim(f, "llama.attention.key_length", 1, kMaxDim, dflt_hd);
  const int vlen = get_dim(f, "llama.attention.value_length", 1, kMaxDim, c.head_dim);
  TQ_CHECK(vlen == c.head_dim, kUnsupported, "{}: value length {} differs from key length {}", f.source(), vlen,
           c.head_dim);
  c.n_ctx_train = get_dim(f, "llama.context_length", 1, int64_t(1) << 30, 2048);
  c.eps = float(f.get_float("llama.attention.layer_norm_rms_epsilon"));
  TQ_CHECK_ARG(std::isfinite(c.eps) && c.eps >= 0 && c.eps < 1, "{}: RMSNorm epsilon {}", f.source(), c.eps);
  c.n_rot = get_dim(f, "llama.rope.dimension_count", 0, c.head_dim, c.head_dim);
  TQ_CHECK_ARG(c.n_rot % 2 == 0, "{}: rope dimension count {} is odd", f.source(), c.n_rot);
  c.rope_theta = f.get_float("llama.rope.freq_base", 10000.0);
  TQ_CHECK_ARG(std::isfinite(c.rope_theta) && c.rope_theta > 1, "{}: rope freq_base {}", f.source(), c.rope_theta);
  const std::string scaling = f.get_string("llama.rope.scaling.type", "none");
  double factor = f.get_float("llama.rope.scale_linear", 1.0);  // older files' spelling
  if (scaling == "linear") factor = f.get_float("llama.rope.scaling.factor", 1.0);
  else TQ_CHECK(scaling == "none", kUnsupported, "{}: rope scaling '{}' (none and linear are supported)", f.source(), scaling);
  TQ_CHECK_ARG(std::isfinite(factor) && factor > 0, "{}: rope scaling factor {}", f.source(), factor);
  c.rope_freq_scale = 1.0 / factor;

  const gguf::TensorInfo& emb = f.tensor("token_embd.weight");
  TQ_CHECK_ARG(emb.ne.size() == 2 && emb.ne[0] == c.dim && emb.ne[1] >= 1 && emb.ne[1] <= kMaxVocab,
               "{}: token_embd.weight has shape {}, expected [{}, vocab]", f.source(), emb.shape_string(), c.dim);
  c.n_vocab = int(emb.ne[1]);
  return c;
}

KvShape LlamaConfig::kv_shape() const {
  return {n_layer, n_head, n_kv_head, head_dim, float(1.0 / std::sqrt(double(head_dim)))};
}

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& path) {
  const gguf::File f = gguf::File::open(path);
  return std::make_unique<LlamaModel>(f);  // weights are copied out; the mapping may go
}

LlamaModel::LlamaModel(const gguf::File& f) : cfg_(LlamaConfig::from_gguf(f)) {
  tok_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(f));
  TQ_CHECK_ARG(tok_->vocab_size() == cfg_.n_vocab, "{}: the tokenizer has {} tokens, the embedding {} rows",
               f.source(), tok_->vocab_size(), cfg_.n_vocab);
  const int64_t d = cfg_.dim, V = cfg_.n_vocab, q = int64_t(cfg_.n_head) * cfg_.head_dim,
                kv = int64_t(cfg_.n_kv_head) * cfg_.head_dim, ff = cfg_.ffn;
  tok_embd_ = f.tensor_f32("token_embd.weight", {d, V});
  out_norm_ = f.tensor_f32("output_norm.weight", {d});
  output_ = optional(f, "output.weight", {d, V});
  rope_freqs_ = optional(f, "rope_freqs.weight", {cfg_.n_rot / 2});
  layers_.resize(size_t(cfg_.n_layer));
  for (int l = 0; l < cfg_.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer& L = layers_[size_t(l)];
    L.attn_norm = f.tensor_f32(p + "attn_norm.weight", {d});
    L.wq = f.tensor_f32(p + "attn_q.weight", {d, q});
    L.wk = f.tensor_f32(p + "attn_k.weight", {d, kv});
    L.wv = f.tensor_f32(p + "attn_v.weight", {d, kv});
    L.wo = f.tensor_f32(p + "attn_output.weight", {q, d});
    L.bq = optional(f, p + "attn_q.bias", {q});
    L.bk = optional(f, p + "attn_k.bias", {kv});
    L.bv = optional(f, p + "attn_v.bias", {kv});
    L.bo = optional(f, p + "attn_output.bias", {d});
    L.ffn_norm = f.tensor_f32(p + "ffn_norm.weight", {d});
    L.w_gate = f.tensor_f32(p + "ffn_gate.weight", {d, ff});
    L.w_up = f.tensor_f32(p + "ffn_up.weight", {d, ff});
    L.w_down = f.tensor_f32(p + "ffn_down.weight", {ff, d});
  }
}

size_t LlamaModel::n_params() const {
  size_t n = tok_embd_.size() + out_norm_.size() + output_.size();
  for (const Layer& L : layers_)
    for (const auto* w : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.bq, &L.bk, &L.bv, &L.bo, &L.ffn_norm,
                          &L.w_gate, &L.w_up, &L.w_down})
      n += w->size();
  return n;
}

void LlamaModel::forward(const int32_t* tokens, int n, KvStore& kv, float* logits, bool all_logits) const {
  const LlamaConfig& c = cfg_;
  const KvShape ks = kv.shape(), want = kv_shape();
  TQ_CHECK_ARG(ks.n_layer == want.n_layer && ks.n_head == want.n_head && ks.n_kv_head == want.n_kv_head &&
                   ks.head_dim == want.head_dim,
               "forward: the KV store's shape does not match the model");
  TQ_CHECK_ARG(n > 0 && n <= (1 << 20), "forward: {} tokens", n);
  for (int t = 0; t < n; ++t)
    TQ_CHECK(tokens[t] >= 0 && tokens[t] < c.n_vocab, kOutOfRange, "forward: token id {} outside [0, {})", tokens[t],
             c.n_vocab);
  const int pos0 = kv.length(0);
  const int64_t qw = int64_t(c.n_head) * c.head_dim, kw = int64_t(c.n_kv_head) * c.head_dim;
  // x [n, dim] residual stream; h [n, dim] normed; q/att [n, Hq*hd]; k/v [n, Hkv*hd]; g/u [n, ffn]
  std::vector<float> x(size_t(n) * c.dim), h(x.size()), q(size_t(n * qw)), att(q.size()), k(size_t(n * kw)),
      v(k.size()), g(size_t(n) * c.ffn), u(g.size()), o(x.size());
  for (int t = 0; t < n; ++t)
    std::memcpy(&x[size_t(t) * c.dim], &tok_embd_[size_t(tokens[t]) * c.dim], sizeof(float) * size_t(c.dim));
  const RopeParams rp{c.n_rot, c.rope_theta, c.rope_freq_scale, rope_freqs_.empty() ? nullptr : rope_freqs_.data()};

  for (int l = 0; l < c.n_layer; ++l) {
    const Layer& L = layers_[size_t(l)];
    rmsnorm(x.data(), L.attn_norm.data(), c.eps, h.data(), n, c.dim);
    matmul(h.data(), L.wq.data(), q.data(), n, c.dim, int(qw));
    matmul(h.data(), L.wk.data(), k.data(), n, c.dim, int(kw));
    matmul(h.data(), L.wv.data(), v.data(), n, c.dim, int(kw));
    add_bias(q.data(), L.bq, n, int(qw));
    add_bias(k.data(), L.bk, n, int(kw));
    add_bias(v.data(), L.bv, n, int(kw));
    rope(q.data(), n, c.n_head, c.head_dim, pos0, rp);
    rope(k.data(), n, c.n_kv_head, c.head_dim, pos0, rp);
    kv.append(l, k.data(), v.data(), n);
    kv.attend(l, q.data(), n, att.data());
    matmul(att.data(), L.wo.data(), o.data(), n, int(qw), c.dim);
    add_bias(o.data(), L.bo, n, c.dim);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];

    rmsnorm(x.data(), L.ffn_norm.data(), c.eps, h.data(), n, c.dim);
    matmul(h.data(), L.w_gate.data(), g.data(), n, c.dim, c.ffn);
    matmul(h.data(), L.w_up.data(), u.data(), n, c.dim, c.ffn);
    swiglu(g.data(), u.data(), g.data(), int64_t(g.size()));
    matmul(g.data(), L.w_down.data(), o.data(), n, c.ffn, c.dim);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
  }
  const int first = all_logits ? 0 : n - 1, rows = n - first;
  rmsnorm(x.data() + size_t(first) * c.dim, out_norm_.data(), c.eps, h.data(), rows, c.dim);
  matmul(h.data(), (output_.empty() ? tok_embd_ : output_).data(), logits, rows, c.dim, c.n_vocab);
}

}  // namespace tq::model
