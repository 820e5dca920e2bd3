// turboquant/model/perplexity.h — perplexity of a text under a KV cache codec, side by side with a
// reference cache in the same run, plus the distance between the two next-token distributions.
//
// The text's tokens are cut into non-overlapping windows of ctx - 1 tokens; each window is run
// with BOS prepended (positions 0 .. ctx-1, both caches cleared first), and the predictions of
// tokens 1 .. ctx-1 are scored: NLL_t = -log p(token_t | tokens before t). Only whole windows count.
//   ppl        = exp(mean NLL) with the test cache, ppl_ref the same with the reference cache
//   kld_mean / kld_max = mean / max over scored positions of KL(p_ref || p_test)
//   top1_agree = share of scored positions where both caches' argmax tokens agree
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "turboquant/model/llama.h"

namespace tq::model {

struct PerplexityOptions {
  int ctx = 256;                 // window length in tokens, BOS included (>= 2)
  int64_t max_tokens = 0;        // score at most this many text tokens (0: all whole windows)
  std::string kv = "fp16";       // test cache (make_kv_store spelling)
  std::string kv_ref = "fp32";   // reference cache
  KvStoreOptions store;          // how the test cache is built (capacity is set to ctx)
  // "cpu": LlamaModel::forward; "cuda": CudaLlama (cuda_llama.h) with both caches on the GPU
  // (make_cuda_kv_store; store must then be the default apart from kind "cuda").
  std::string device = "cpu";
  std::string weights = "fp32";  // cuda: the matrices' type, fp32 / fp16 / bf16 (cuda_llama.h)
};

struct PerplexityResult {
  double ppl = 0, ppl_ref = 0, kld_mean = 0, kld_max = 0, top1_agree = 0;
  double nll = 0, nll_ref = 0;   // mean NLL (nats)
  int64_t tokens = 0;            // scored tokens
  int windows = 0;
  std::string kv, kv_ref;        // store names
  size_t kv_bytes_per_token = 0, kv_ref_bytes_per_token = 0;
  double seconds = 0, seconds_ref = 0;  // forward time with each cache
  int64_t processed = 0;         // tokens run through the model per cache (BOS included)
  double tokens_per_s() const { return seconds > 0 ? double(processed) / seconds : 0; }
};

// Called after each window with (windows done, windows total, result so far).
using PerplexityProgress = std::function<void(int, int, const PerplexityResult&)>;

// tokens: the text's tokens without BOS. Throws kInvalidArgument when not even one window fits.
PerplexityResult evaluate_perplexity(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& opt, const PerplexityProgress& progress = {});

}  // namespace tq::model
