// src/kv/attention_reference.cpp — the definition of attention over the quantized cache: decode
// every stored vector (Codec::decode), exact softmax in double. Slow by design; every fast path is
// tested against it. Also the argument checks shared with the fused engine.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kv/dtype_io.h"
#include "kv/kv_read.h"
#include "turboquant/attention.h"
#include "turboquant/error.h"

namespace tq {

int64_t check_attend_query(const KvCache& cache, int layer, const AttendQuery& q) {
  cache.check_layer(layer);
  const int Hkv = cache.n_kv_heads();
  TQ_CHECK_ARG(q.batch >= 1, "attend: batch must be >= 1, got {}", q.batch);
  TQ_CHECK_ARG(q.seqs != nullptr, "attend: seqs is null");
  TQ_CHECK_ARG(q.heads_q >= 1 && q.heads_q % Hkv == 0,
               "attend: heads_q ({}) must be a positive multiple of the cache's n_kv_heads ({})", q.heads_q, Hkv);
  TQ_CHECK_ARG(q.q != nullptr && q.out != nullptr, "attend: q and out must not be null");
  kv::check_float_dtype(q.q_dtype, "attend: q");
  kv::check_float_dtype(q.out_dtype, "attend: out");
  TQ_CHECK_ARG(q.q_token_stride >= 0 && q.q_head_stride >= 0 && q.out_token_stride >= 0 && q.out_head_stride >= 0,
               "attend: negative stride");
  TQ_CHECK_ARG(std::isfinite(q.scale) && q.scale >= 0, "attend: scale must be finite and >= 0 (0 = 1/sqrt(D)), got {}",
               q.scale);
  int64_t rows = 0;
  for (int b = 0; b < q.batch; ++b) {
    cache.check_seq(q.seqs[b]);
    const int len = cache.seq_len(layer, q.seqs[b]);
    const int ql = q.q_lens ? q.q_lens[b] : 1;
    TQ_CHECK_ARG(len >= 1, "attend: sequence {} is empty in layer {} (append its keys and values first)", q.seqs[b],
                 layer);
    TQ_CHECK_ARG(ql >= 1 && ql <= len,
                 "attend: q_len {} of sequence {} must be in [1, {}] (the new tokens are the last ones appended)", ql,
                 q.seqs[b], len);
    rows += ql;
  }
  // Output rows must not overlap (q may: a read-only view such as one row for every head is fine).
  const int D = cache.head_dim();
  const int64_t ohs = q.out_head_stride ? q.out_head_stride : D;
  const int64_t ots = q.out_token_stride ? q.out_token_stride : int64_t(q.heads_q) * D;
  TQ_CHECK_ARG((q.heads_q == 1 || ohs >= D) && (rows == 1 || ots >= (q.heads_q - 1) * ohs + D),
               "attend: out strides (token {}, head {}) make output rows overlap (head_dim {}, heads_q {})", ots, ohs, D,
               q.heads_q);
  // A non-finite query has no meaningful attention (softmax of NaN): refuse it as encode refuses
  // non-finite keys, before anything is written.
  const int64_t qhs = q.q_head_stride ? q.q_head_stride : D;
  const int64_t qts = q.q_token_stride ? q.q_token_stride : int64_t(q.heads_q) * D;
  std::vector<float> row(size_t(D), 0.f);
  for (int64_t r = 0; r < rows; ++r)
    for (int h = 0; h < q.heads_q; ++h) {
      kv::load_row(q.q, q.q_dtype, r * qts + h * qhs, D, row.data());
      for (int i = 0; i < D; ++i)
        TQ_CHECK_ARG(std::isfinite(row[size_t(i)]), "attend: q row {} head {} has a non-finite value at {}", r, h, i);
    }
  return rows;
}

AttentionPaths attention_paths(const KvCache& cache, int layer) {
  const KvLayerView L = cache.layer_view(layer);
  auto path = [](const Codec& c) -> std::string {
    if (c.spec().is_turboquant()) return "fused-tq";
    if (c.spec().is_passthrough()) return "fused-passthrough";
    return "decode-block";
  };
  return {path(*L.k_codec), path(*L.v_codec)};
}

void attend_reference(const KvCache& cache, int layer, const AttendQuery& q) {
  check_attend_query(cache, layer, q);
  const int Hkv = cache.n_kv_heads(), D = cache.head_dim(), Hq = q.heads_q, G = Hq / Hkv;
  const double scale = q.scale > 0 ? double(q.scale) : 1.0 / std::sqrt(double(D));
  const int64_t qts = q.q_token_stride ? q.q_token_stride : int64_t(Hq) * D, qhs = q.q_head_stride ? q.q_head_stride : D;
  const int64_t ots = q.out_token_stride ? q.out_token_stride : int64_t(Hq) * D;
  const int64_t ohs = q.out_head_stride ? q.out_head_stride : D;
  const KvLayerView L = cache.layer_view(layer);
  std::vector<float> qrow(size_t(D), 0.f), orow(size_t(D), 0.f);
  std::vector<uint8_t> kbuf(L.k_codec->code_size()), vbuf(L.v_codec->code_size());
  int64_t row0 = 0;
  for (int b = 0; b < q.batch; ++b) {
    const KvSeqView s = cache.seq_view(layer, q.seqs[b]);
    const int T = s.n_tokens, ql = q.q_lens ? q.q_lens[b] : 1;
    for (int g = 0; g < Hkv; ++g) {
      // K, V of this head as float [T][D]: decoded tokens, then window tokens.
      std::vector<float> K(size_t(T) * D), V(size_t(T) * D);
      for (int t = 0; t < T; ++t) {
        if (t < s.n_encoded) {
          kv::gather_code(L.k_pool, L.k_layout, s, g, t, kbuf.data());
          kv::gather_code(L.v_pool, L.v_layout, s, g, t, vbuf.data());
          L.k_codec->decode(kbuf.data(), 1, &K[size_t(t) * D], size_t(D));
          L.v_codec->decode(vbuf.data(), 1, &V[size_t(t) * D], size_t(D));
        } else {
          std::copy_n(kv::window_row(s, cache.window(), Hkv, D, false, g, t), D, &K[size_t(t) * D]);
          std::copy_n(kv::window_row(s, cache.window(), Hkv, D, true, g, t), D, &V[size_t(t) * D]);
        }
      }
      for (int i = 0; i < ql; ++i) {
        const int last = T - ql + i;  // causal: this query sees keys 0..last
        for (int h = g * G; h < (g + 1) * G; ++h) {
          kv::load_row(q.q, q.q_dtype, (row0 + i) * qts + h * qhs, D, qrow.data());
          std::vector<double> sc(size_t(last) + 1);
          double mx = -INFINITY;
          for (int t = 0; t <= last; ++t) {
            double acc = 0;
            for (int j = 0; j < D; ++j) acc += double(qrow[size_t(j)]) * double(K[size_t(t) * D + j]);
            sc[size_t(t)] = acc * scale;
            mx = std::max(mx, sc[size_t(t)]);
          }
          double den = 0;
          for (auto& v : sc) den += (v = std::exp(v - mx));
          for (int j = 0; j < D; ++j) {
            double acc = 0;
            for (int t = 0; t <= last; ++t) acc += sc[size_t(t)] * double(V[size_t(t) * D + j]);
            orow[size_t(j)] = float(acc / den);
          }
          kv::store_row(q.out, q.out_dtype, (row0 + i) * ots + h * ohs, orow.data(), D);
        }
      }
    }
    row0 += ql;
  }
}

}  // namespace tq
