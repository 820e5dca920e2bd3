// tests/kv/kv_test_util.h — random inputs, an independent naive attention, error norms.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kv/kv_read.h"
#include "test_util.h"
#include "turboquant/kv_cache.h"

namespace tqtest {

using tq::testing::randn;  // tests/test_util.h

using tq::testing::rel_l2;  // tests/test_util.h

// Naive causal GQA attention over float K/V of one sequence, written independently of the
// library: q [nq][Hq][D], k/v [T][Hkv][D] -> out [nq][Hq][D]; query i sees keys 0..T-nq+i.
inline std::vector<float> naive_attention(const std::vector<float>& q, int nq, int Hq, const std::vector<float>& k,
                                          const std::vector<float>& v, int T, int Hkv, int D, double scale) {
  std::vector<float> out(size_t(nq) * Hq * D);
  const int G = Hq / Hkv;
  for (int i = 0; i < nq; ++i)
    for (int h = 0; h < Hq; ++h) {
      const int g = h / G, last = T - nq + i;
      std::vector<double> p(size_t(last) + 1);
      double mx = -1e300, den = 0;
      for (int t = 0; t <= last; ++t) {
        double s = 0;
        for (int j = 0; j < D; ++j)
          s += double(q[(size_t(i) * Hq + h) * D + j]) * double(k[(size_t(t) * Hkv + g) * D + j]);
        p[size_t(t)] = s * scale;
        mx = std::max(mx, p[size_t(t)]);
      }
      for (auto& x : p) den += (x = std::exp(x - mx));
      for (int j = 0; j < D; ++j) {
        double o = 0;
        for (int t = 0; t <= last; ++t) o += p[size_t(t)] * double(v[(size_t(t) * Hkv + g) * D + j]);
        out[(size_t(i) * Hq + h) * D + j] = float(o / den);
      }
    }
  return out;
}

// Decodes every stored token of (layer, seq, head) back to float [T][D] through the codec — what
// the cache holds, read independently of the attention code.
inline std::vector<float> stored_tokens(const tq::KvCache& c, int layer, int seq, int head, bool v) {
  const tq::KvLayerView L = c.layer_view(layer);
  const tq::KvSeqView s = c.seq_view(layer, seq);
  const tq::Codec& codec = v ? *L.v_codec : *L.k_codec;
  const int D = c.head_dim();
  std::vector<float> out(size_t(s.n_tokens) * D);
  std::vector<uint8_t> buf(codec.code_size());
  for (int t = 0; t < s.n_tokens; ++t) {
    if (t < s.n_encoded) {
      tq::kv::gather_code(v ? L.v_pool : L.k_pool, v ? L.v_layout : L.k_layout, s, head, t, buf.data());
      codec.decode(buf.data(), 1, &out[size_t(t) * D], size_t(D));
    } else {
      const float* r = tq::kv::window_row(s, c.window(), c.n_kv_heads(), D, v, head, t);
      std::copy(r, r + D, &out[size_t(t) * D]);
    }
  }
  return out;
}

}  // namespace tqtest
