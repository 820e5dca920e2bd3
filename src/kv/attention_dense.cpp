// src/kv/attention_dense.cpp — one-shot attention on dense Q/K/V arrays (the `tq attention` CLI and
// tq_attention_dense): a contiguous cache of B sequences, filled, then attended.
#include "turboquant/attention.h"
#include "turboquant/error.h"

namespace tq {

void attention_dense(const float* q, const float* k, const float* v, int B, int Hq, int Hkv, int T, int D,
                     const std::string& k_codec, const std::string& v_codec, float scale, float* out, bool reference,
                     const AttentionOptions& opts) {
  TQ_CHECK_ARG(q && k && v && out, "attention: null array");
  TQ_CHECK_ARG(B >= 1 && Hq >= 1 && Hkv >= 1 && T >= 1 && D >= 1,
               "attention: B, Hq, Hkv, T, D must be >= 1 (got {}, {}, {}, {}, {})", B, Hq, Hkv, T, D);
  TQ_CHECK_ARG(Hq % Hkv == 0, "attention: Hq ({}) must be a multiple of Hkv ({})", Hq, Hkv);
  KvCacheConfig cfg;
  cfg.n_kv_heads = Hkv;
  cfg.head_dim = D;
  cfg.codec = "k=" + k_codec + ",v=" + v_codec;
  cfg.storage = KvStorage::kContiguous;
  cfg.max_seqs = B;
  cfg.max_seq_len = T;
  KvCache cache(cfg);
  std::vector<int> seqs;
  const int64_t head_stride = int64_t(T) * D, seq_stride = int64_t(Hkv) * T * D;
  for (int b = 0; b < B; ++b) {
    seqs.push_back(cache.add_sequence());
    cache.append(0, seqs.back(), T, {k + b * seq_stride, DType::kF32, D, head_stride},
                 {v + b * seq_stride, DType::kF32, D, head_stride});
  }
  AttendQuery a;
  a.seqs = seqs.data();
  a.batch = B;
  a.heads_q = Hq;
  a.q = q;
  a.out = out;
  a.scale = scale;
  if (reference) attend_reference(cache, 0, a);
  else attend(cache, 0, a, opts);
}

}  // namespace tq
