// bench/study_pv_precision.cpp — what 8-bit attention weights would cost in quality, before a GPU
// kernel is built around them (docs/CUDA.md, "Session 6": PV on int8 tensor cores needs P^T in 8
// bits). Runs a GGUF model over a text with a compressed KV cache (CodecKvStore semantics: decoded
// rows, double accumulation) and one of these value-weight roundings, then reports perplexity
// and the KL divergence from the uncompressed fp32 run (ExactKvStore), as tq perplexity does:
//   exact : w_t = p_t (the reference)
//   fp16  : w_t = fp16(p_t · n_t) / n_t  (today's GPU kernel: V norm n_t folded into p, fp16 P^T)
//   u8/32 : p_t · n_t rounded to 255 levels of its 32-token block's max (int8 mma, s8 x u8)
//   s8/32 : the same with 127 levels (s8 x s8)
//   u8/16 : 255 levels per 16-token block
//   u8/n128: p_t · n_t in 255 levels of max(n) over its 128-token window (p <= 1 after the
//            softmax max): one scale per window shared by every head, a P scale the kernel could
//            keep across block pairs instead of reducing max(p · n) per pair (docs/CUDA.md)
// The softmax denominator stays exact (fp32 p in the kernel), as the kernel would compute it.
//   study_pv_precision MODEL TEXT [ctx=2048] [max_tokens=8192] [kv=tq3]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "turboquant/codec.h"
#include "turboquant/model/kv_store.h"
#include "turboquant/model/llama.h"

namespace {

using tq::model::KvShape;

enum Mode { kExact, kFp16, kU8B32, kS8B32, kU8B16, kU8N128, kModes };
const char* kNames[] = {"exact", "fp16", "u8/32", "s8/32", "u8/16", "u8/n128"};

double round_fp16(double x) {  // round to nearest fp16 (normal range: weights here are <= ~1e3)
  if (x == 0) return 0;
  int e = 0;
  std::frexp(x, &e);
  const double ulp = std::ldexp(1.0, std::max(e - 11, -24));
  return std::nearbyint(x / ulp) * ulp;
}

// A compressed store whose attention rounds the value weights as `mode` says.
class StudyStore final : public tq::model::KvStore {
 public:
  StudyStore(const KvShape& s, const std::string& kv, Mode mode)
      : KvStore(s), inner_(s, tq::parse_kv_codec(kv)), mode_(mode) {}
  void append(int layer, const float* k, const float* v, int n) override { inner_.append(layer, k, v, n); }
  int length(int layer) const override { return inner_.length(layer); }
  void clear() override { inner_.clear(); }
  size_t bytes_per_token() const override { return inner_.bytes_per_token(); }
  std::string name() const override { return inner_.name() + " " + kNames[mode_]; }

  void attend(int layer, const float* q, int n, float* out) const override {
    std::vector<float> K, V;
    inner_.decode_layer(layer, K, V);
    const int Hq = shape_.n_head, Hkv = shape_.n_kv_head, D = shape_.head_dim, G = Hq / Hkv;
    const int len = inner_.length(layer);
    const int levels = mode_ == kS8B32 ? 127 : 255, blk = mode_ == kU8B16 ? 16 : mode_ == kU8N128 ? 128 : 32;
#pragma omp parallel for schedule(dynamic)
    for (int r = 0; r < n * Hq; ++r) {
      const int i = r / Hq, h = r % Hq, g = h / G, last = len - n + i;
      const float* qr = q + (size_t(i) * Hq + h) * D;
      std::vector<double> s(size_t(last) + 1), nv(size_t(last) + 1);
      double mx = -INFINITY;
      for (int t = 0; t <= last; ++t) {
        const float* kr = &K[(size_t(t) * Hkv + g) * D];
        const float* vr = &V[(size_t(t) * Hkv + g) * D];
        double a = 0, b = 0;
        for (int j = 0; j < D; ++j) a += double(qr[j]) * kr[j], b += double(vr[j]) * vr[j];
        s[size_t(t)] = a * shape_.scale;
        nv[size_t(t)] = std::sqrt(b);
        mx = std::max(mx, s[size_t(t)]);
      }
      std::vector<double> w(size_t(last) + 1);
      double den = 0;
      for (int t = 0; t <= last; ++t) den += (w[size_t(t)] = std::exp(s[size_t(t)] - mx));
      if (mode_ == kFp16) {
        for (int t = 0; t <= last; ++t)
          if (nv[size_t(t)] > 0) w[size_t(t)] = round_fp16(w[size_t(t)] * nv[size_t(t)]) / nv[size_t(t)];
      } else if (mode_ != kExact) {
        for (int t0 = 0; t0 <= last; t0 += blk) {  // blocks of positions [t0, t0 + blk)
          const int t1 = std::min(last + 1, t0 + blk);
          double bm = 0;
          for (int t = t0; t < t1; ++t) bm = std::max(bm, (mode_ == kU8N128 ? 1.0 : w[size_t(t)]) * nv[size_t(t)]);
          if (bm == 0) continue;
          for (int t = t0; t < t1; ++t)
            if (nv[size_t(t)] > 0)
              w[size_t(t)] = std::nearbyint(w[size_t(t)] * nv[size_t(t)] / bm * levels) * bm / levels / nv[size_t(t)];
        }
      }
      float* o = out + (size_t(i) * Hq + h) * D;
      for (int j = 0; j < D; ++j) {
        double a = 0;
        for (int t = 0; t <= last; ++t) a += w[size_t(t)] * V[(size_t(t) * Hkv + g) * D + j];
        o[j] = float(a / den);
      }
    }
  }

 private:
  tq::model::CodecKvStore inner_;
  Mode mode_;
};

std::vector<double> log_softmax(const float* x, int n) {
  double mx = -INFINITY, z = 0;
  for (int i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  for (int i = 0; i < n; ++i) z += std::exp(double(x[i]) - mx);
  std::vector<double> r(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) r[size_t(i)] = double(x[i]) - mx - std::log(z);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL TEXT [ctx=2048] [max_tokens=8192] [kv=tq3]\n", argv[0]);
    return 2;
  }
  const int ctx = argc > 3 ? std::atoi(argv[3]) : 2048;
  const long max_tokens = argc > 4 ? std::atol(argv[4]) : 8192;
  const std::string kv = argc > 5 ? argv[5] : "tq3";
  const auto model = tq::model::LlamaModel::load(argv[1]);
  std::ifstream f(argv[2]);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::vector<int32_t> toks = model->tokenizer().encode(ss.str());
  const int V = model->config().n_vocab;
  const int bos = model->tokenizer().bos();
  const int windows = int(std::min<long>(long(toks.size()) / (ctx - 1), max_tokens / (ctx - 1)));
  if (windows < 1 || ctx < 2) {
    std::fprintf(stderr, "text too short for one window of %d tokens\n", ctx);
    return 1;
  }
  double nll[kModes] = {}, kld[kModes] = {}, kld_max[kModes] = {}, nll_ref = 0;
  long scored = 0;
  std::vector<float> logits[kModes], logits_ref(size_t(ctx) * V);
  for (int w = 0; w < windows; ++w) {
    std::vector<int32_t> win(static_cast<size_t>(ctx));
    win[0] = bos;
    std::copy_n(toks.begin() + long(w) * (ctx - 1), ctx - 1, win.begin() + 1);
    {
      tq::model::ExactKvStore store(model->kv_shape());
      model->forward(win.data(), ctx, store, logits_ref.data(), true);
    }
    for (int m = 0; m < kModes; ++m) {
      StudyStore store(model->kv_shape(), kv, Mode(m));
      logits[m].assign(size_t(ctx) * V, 0.f);
      model->forward(win.data(), ctx, store, logits[m].data(), true);
    }
    for (int t = 0; t + 1 < ctx; ++t) {
      const std::vector<double> ref = log_softmax(&logits_ref[size_t(t) * V], V);
      nll_ref -= ref[size_t(win[size_t(t) + 1])];
      for (int m = 0; m < kModes; ++m) {
        const std::vector<double> lp = log_softmax(&logits[m][size_t(t) * V], V);
        nll[m] -= lp[size_t(win[size_t(t) + 1])];
        double k = 0;
        for (int i = 0; i < V; ++i) k += std::exp(ref[size_t(i)]) * (ref[size_t(i)] - lp[size_t(i)]);
        kld[m] += k;
        kld_max[m] = std::max(kld_max[m], k);
      }
      ++scored;
    }
    std::fprintf(stderr, "window %d/%d\n", w + 1, windows);
  }
  std::printf("kv %s, ctx %d, %d windows, %ld scored tokens\n", kv.c_str(), ctx, windows, scored);
  std::printf("fp32 cache (reference): ppl %.4f\n", std::exp(nll_ref / scored));
  std::printf("| P^T weights | ppl | ratio to fp32 | KLD mean | KLD max |\n|---|---|---|---|---|\n");
  for (int m = 0; m < kModes; ++m)
    std::printf("| %s | %.4f | %.5f | %.4f | %.2f |\n", kNames[m], std::exp(nll[m] / scored),
                std::exp((nll[m] - nll_ref) / scored), kld[m] / scored, kld_max[m]);
  return 0;
}
