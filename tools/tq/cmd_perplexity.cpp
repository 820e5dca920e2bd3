// tools/tq/cmd_perplexity.cpp — `tq perplexity`: a GGUF llama model's perplexity on a text with a
// compressed KV cache and, in the same run, with a reference cache.
//   tq perplexity --model M.gguf --text F.txt --ctx 256 --kv k4v3 [--kv-ref fp32] [--max-tokens N]
//                 [--kv-store auto|codec|cache [--edge-layers N --edge-codec C --window R]]
//                 [--attn fused|reference] [--device cpu|cuda [--weights fp32|fp16|bf16]]
//                 [--threads N] [--json] [--no-progress]
// Windows, scoring and metrics: include/turboquant/model/perplexity.h. Results: docs/MODEL.md.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "command.h"
#include "model_options.h"
#include "turboquant/error.h"
#include "turboquant/model/llama.h"
#include "turboquant/model/perplexity.h"

namespace {

struct Opts {
  std::string model, text, kv = "k4v3", kv_ref = "fp32";
  int ctx = 256, threads = 0;
  long long max_tokens = 0;
  bool json = false, no_progress = false;
  tq::model::KvStoreOptions store;
  std::string device = "cpu", weights = "fp32";
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TQ_CHECK(in, kIoError, "{}: cannot open", path);
  std::stringstream ss;
  ss << in.rdbuf();
  TQ_CHECK(!in.bad(), kIoError, "{}: read error", path);
  return ss.str();
}

int run(const Opts& o) {
  tq::model::set_threads(o.threads);
  const auto t_load = std::chrono::steady_clock::now();
  const auto model = tq::model::LlamaModel::load(o.model);
  const std::string text = read_text(o.text);
  std::vector<int32_t> tokens = model->tokenizer().encode(text);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  const auto& c = model->config();

  const bool bar = !o.no_progress && isatty(2);
  const auto progress = [&](int done, int total, const tq::model::PerplexityResult& r) {
    if (!bar) return;
    const int w = 30, fill = done * w / total;
    std::fprintf(stderr, "\r[%s%s] %d/%d windows  ppl %.4f  ref %.4f  KLD %.5f  %.0f tok/s ",
                 std::string(size_t(fill), '#').c_str(), std::string(size_t(w - fill), '.').c_str(), done, total, r.ppl,
                 r.ppl_ref, r.kld_mean, r.tokens_per_s());
    std::fflush(stderr);
  };
  const auto r = tq::model::evaluate_perplexity(
      *model, tokens, tq::model::PerplexityOptions{o.ctx, o.max_tokens, o.kv, o.kv_ref, o.store, o.device, o.weights}, progress);
  if (bar) std::fprintf(stderr, "\n");
  if (o.ctx > c.n_ctx_train)
    std::fprintf(stderr, "tq perplexity: warning: ctx %d exceeds the model's training context %d\n", o.ctx,
                 c.n_ctx_train);

  const double fp16_bytes = double(c.n_layer) * c.n_kv_head * c.head_dim * 2 * 2;  // fp16 K+V per token
  if (o.json) {
    nlohmann::json j = {{"model", o.model},
                        {"text", o.text},
                        {"ctx", o.ctx},
                        {"windows", r.windows},
                        {"tokens", r.tokens},
                        {"text_tokens", tokens.size()},
                        {"kv", r.kv},
                        {"kv_ref", r.kv_ref},
                        {"attn", o.store.attn},
                        {"device", o.device},
                        {"weights", o.weights},
                        {"ppl", r.ppl},
                        {"ppl_ref", r.ppl_ref},
                        {"ppl_ratio", r.ppl / r.ppl_ref},
                        {"nll", r.nll},
                        {"nll_ref", r.nll_ref},
                        {"kld_mean", r.kld_mean},
                        {"kld_max", r.kld_max},
                        {"top1_agree", r.top1_agree},
                        {"kv_bytes_per_token", r.kv_bytes_per_token},
                        {"kv_ref_bytes_per_token", r.kv_ref_bytes_per_token},
                        {"kv_compression_vs_fp16", fp16_bytes / double(r.kv_bytes_per_token)},
                        {"tokens_per_s", r.tokens_per_s()},
                        {"tokens_per_s_ref", r.seconds_ref > 0 ? double(r.processed) / r.seconds_ref : 0.0},
                        {"threads", tq::model::max_threads()},
                        {"load_s", load_s}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("model     %s (llama, %d layers, dim %d, %d/%d heads, head_dim %d, vocab %d)\n", o.model.c_str(),
                c.n_layer, c.dim, c.n_head, c.n_kv_head, c.head_dim, c.n_vocab);
    std::printf("text      %s: %zu tokens, %d windows of %d (BOS + %d), %lld scored\n", o.text.c_str(), tokens.size(),
                r.windows, o.ctx, o.ctx - 1, (long long)r.tokens);
    std::printf("kv        %-28s %6zu B/token (%.2fx smaller than fp16)\n", r.kv.c_str(), r.kv_bytes_per_token,
                fp16_bytes / double(r.kv_bytes_per_token));
    std::printf("kv-ref    %-28s %6zu B/token\n", r.kv_ref.c_str(), r.kv_ref_bytes_per_token);
    std::printf("ppl       %.4f   (ref %.4f, ratio %.4f)\n", r.ppl, r.ppl_ref, r.ppl / r.ppl_ref);
    std::printf("KLD       mean %.6f  max %.4f   top-1 agreement %.2f%%\n", r.kld_mean, r.kld_max,
                100 * r.top1_agree);
    std::printf("speed     %.0f tokens/s with kv, %.0f with kv-ref (%s, %d threads)\n", r.tokens_per_s(),
                r.seconds_ref > 0 ? double(r.processed) / r.seconds_ref : 0.0, o.device.c_str(),
                tq::model::max_threads());
  }
  return 0;
}

tq::cli::Registrar reg("perplexity", "Perplexity of a GGUF llama model on a text with a compressed KV cache",
                       [](CLI::App& app) {
                         auto o = std::make_shared<Opts>();
                         app.add_option("--model", o->model, "GGUF model (llama architecture)")->required();
                         app.add_option("--text", o->text, "UTF-8 text file")->required();
                         app.add_option("--ctx", o->ctx, "window length in tokens, BOS included")
                             ->check(CLI::Range(2, 1 << 20));
                         app.add_option("--kv", o->kv, "KV cache codec: kXvY, k=CODEC,v=CODEC, or one codec");
                         app.add_option("--kv-ref", o->kv_ref, "reference KV cache codec");
                         app.add_option("--max-tokens", o->max_tokens, "score at most N text tokens (0: all)")
                             ->check(CLI::NonNegativeNumber);
                         tq::cli::add_kv_store_options(app, o->store);
                         tq::cli::add_device_options(app, o->device, o->weights);
                         app.add_option("--threads", o->threads, "threads (0: all cores)");
                         app.add_flag("--json", o->json, "print one JSON object");
                         app.add_flag("--no-progress", o->no_progress, "no progress bar on stderr");
                         return [o]() { return run(*o); };
                       });

}  // namespace
