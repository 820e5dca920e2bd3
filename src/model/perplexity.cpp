// src/model/perplexity.cpp — windowed perplexity with a test and a reference KV cache
// (definitions: turboquant/model/perplexity.h).
#include "turboquant/model/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "turboquant/error.h"
#include "turboquant/model/cuda_llama.h"
#include "turboquant/model/ops.h"

namespace tq::model {

PerplexityResult evaluate_perplexity(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opt, const PerplexityProgress& progress) {
  TQ_CHECK_ARG(opt.ctx >= 2 && opt.ctx <= (1 << 20), "perplexity: ctx {} (at least 2: BOS and one token)", opt.ctx);
  TQ_CHECK_ARG(opt.max_tokens >= 0, "perplexity: max_tokens {}", opt.max_tokens);
  const int32_t bos = model.tokenizer().bos();
  TQ_CHECK_ARG(bos >= 0, "perplexity: the model's vocabulary has no BOS token");
  const int64_t per_window = opt.ctx - 1;
  int64_t usable = int64_t(tokens.size());
  if (opt.max_tokens > 0) usable = std::min(usable, opt.max_tokens);
  const int n_windows = int(usable / per_window);
  TQ_CHECK_ARG(n_windows >= 1, "perplexity: {} tokens do not fill one window of {} (ctx {} minus BOS)", usable,
               per_window, opt.ctx);

  const KvShape shape = model.kv_shape();
  TQ_CHECK_ARG(opt.device == "cpu" || opt.device == "cuda", "perplexity: device '{}' (cpu or cuda)", opt.device);
  std::unique_ptr<CudaLlama> gpu;
  std::unique_ptr<KvStore> test, ref;
  if (opt.device == "cuda") {
    const KvStoreOptions& s = opt.store;
    TQ_CHECK_ARG((s.kind == "auto" || s.kind == "cuda") && s.edge_layers == 0 && s.window == 0 && s.attn == "fused",
                 "perplexity: device cuda runs the GPU KV store only (no kv-store kind '{}', edge layers, window or "
                 "reference attention)",
                 s.kind);
    gpu = std::make_unique<CudaLlama>(model, opt.weights);
    test = gpu->make_kv_store(opt.kv, opt.ctx, s.v_quads);
    ref = gpu->make_kv_store(opt.kv_ref, opt.ctx);  // the reference runs on the same device
  } else {
    TQ_CHECK_ARG(opt.weights == "fp32", "perplexity: weights '{}' on the CPU (fp32 only; fp16 / bf16 with device cuda)",
                 opt.weights);
    KvStoreOptions so = opt.store;
    so.capacity = opt.ctx;
    test = make_kv_store(shape, opt.kv, so);
    KvStoreOptions ro;  // the reference cache: plain, same attention path as the test cache
    ro.capacity = opt.ctx;
    ro.attn = opt.store.attn;
    ref = make_kv_store(shape, opt.kv_ref, ro);
  }
  const auto forward = [&](const int32_t* toks, KvStore& kv, float* logits) {
    if (gpu) gpu->forward(toks, opt.ctx, kv, logits, true);
    else model.forward(toks, opt.ctx, kv, logits, true);
  };
  PerplexityResult r;
  r.kv = test->name();
  r.kv_ref = ref->name();
  r.kv_bytes_per_token = test->bytes_per_token();
  r.kv_ref_bytes_per_token = ref->bytes_per_token();

  const int V = model.config().n_vocab;
  std::vector<int32_t> win(size_t(opt.ctx));
  std::vector<float> lt(size_t(opt.ctx) * V), lr(lt.size());
  std::vector<double> pt(static_cast<size_t>(V)), pr(static_cast<size_t>(V));
  double nll = 0, nll_ref = 0, kld = 0;
  int64_t agree = 0;
  using Clock = std::chrono::steady_clock;
  for (int w = 0; w < n_windows; ++w) {
    win[0] = bos;
    std::copy_n(tokens.begin() + w * per_window, per_window, win.begin() + 1);
    test->clear();
    ref->clear();
    auto t0 = Clock::now();
    forward(win.data(), *test, lt.data());
    auto t1 = Clock::now();
    forward(win.data(), *ref, lr.data());
    auto t2 = Clock::now();
    r.seconds += std::chrono::duration<double>(t1 - t0).count();
    r.seconds_ref += std::chrono::duration<double>(t2 - t1).count();
    // Logits at position i predict the token at i + 1.
    for (int i = 0; i + 1 < opt.ctx; ++i) {
      const float* a = &lt[size_t(i) * V];
      const float* b = &lr[size_t(i) * V];
      log_softmax(a, pt.data(), V);
      log_softmax(b, pr.data(), V);
      const int32_t next = win[size_t(i) + 1];
      nll -= pt[size_t(next)];
      nll_ref -= pr[size_t(next)];
      const double k = kl_divergence(pr.data(), pt.data(), V);
      kld += k;
      r.kld_max = std::max(r.kld_max, k);
      agree += argmax(a, V) == argmax(b, V);
    }
    r.windows = w + 1;
    r.tokens = int64_t(r.windows) * per_window;
    r.processed = int64_t(r.windows) * opt.ctx;
    r.nll = nll / double(r.tokens);
    r.nll_ref = nll_ref / double(r.tokens);
    r.ppl = std::exp(r.nll);
    r.ppl_ref = std::exp(r.nll_ref);
    r.kld_mean = kld / double(r.tokens);
    r.top1_agree = double(agree) / double(r.tokens);
    if (progress) progress(r.windows, n_windows, r);
  }
  return r;
}

}  // namespace tq::model
