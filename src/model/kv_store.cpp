// src/model/kv_store.cpp — exact and codec-compressed KV stores (contract: turboquant/model/kv_store.h).
#include "turboquant/model/kv_store.h"

#include <cmath>

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

// The seam for a fused engine: this decodes every stored row and attends on the decoded values,
// O(length) decodes per call. A kernel that scores queries against the codes (lookup tables in
// the rotated domain) replaces these lines and must match them (tests/model/test_kv_store.cpp).
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

std::unique_ptr<KvStore> make_kv_store(const KvShape& s, const std::string& kv_codec) {
  if (kv_codec == "fp32" || kv_codec == "exact") return std::make_unique<ExactKvStore>(s);
  return std::make_unique<CodecKvStore>(s, parse_kv_codec(kv_codec));
}

}  // namespace tq::model
