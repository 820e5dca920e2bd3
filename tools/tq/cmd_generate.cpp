// tools/tq/cmd_generate.cpp — `tq generate`: text from a GGUF llama model with a compressed KV cache,
// streamed to stdout token by token.
//   tq generate --model M.gguf [--prompt "..."] [-n 64] [--kv tq3] [--temp 0] [--seed S] [--threads N]
//               [--kv-store auto|codec|cache [--edge-layers N --edge-codec C --window R]]
//               [--attn fused|reference] [--device cpu|cuda [--weights fp32|fp16|bf16]]
// stdout: the prompt, then each new token's text as it is produced (greedy at temp 0). An empty
// prompt starts from BOS alone. Generation stops after n tokens or at EOS. stderr: tokens/s and
// KV bytes per token.
#include <chrono>
#include <cstdio>
#include <memory>

#include "command.h"
#include "model_options.h"
#include "turboquant/error.h"
#include "turboquant/model/cuda_llama.h"
#include "turboquant/model/llama.h"

namespace {

struct Opts {
  std::string model, prompt, kv = "tq3";
  int n = 64, threads = 0;
  float temp = 0;
  uint64_t seed = 1;
  tq::model::KvStoreOptions store;
  std::string device = "cpu", weights = "fp32";
};

int run(const Opts& o) {
  tq::model::set_threads(o.threads);
  const auto model = tq::model::LlamaModel::load(o.model);
  const auto& tok = model->tokenizer();
  const auto& c = model->config();
  TQ_CHECK_ARG(tok.bos() >= 0, "{}: the vocabulary has no BOS token", o.model);
  std::vector<int32_t> ids = {tok.bos()};
  const auto p = tok.encode(o.prompt);
  ids.insert(ids.end(), p.begin(), p.end());
  tq::model::KvStoreOptions so = o.store;
  so.capacity = int(ids.size()) + o.n;
  std::unique_ptr<tq::model::CudaLlama> gpu;
  std::unique_ptr<tq::model::KvStore> kv;
  if (o.device == "cuda") {
    TQ_CHECK_ARG((so.kind == "auto" || so.kind == "cuda") && so.edge_layers == 0 && so.window == 0 &&
                     so.attn == "fused",
                 "device cuda runs the GPU KV store only (no kv-store kind '{}', edge layers, window or reference "
                 "attention)",
                 so.kind);
    gpu = std::make_unique<tq::model::CudaLlama>(*model, o.weights);
    kv = gpu->make_kv_store(o.kv, so.capacity, so.v_quads);
  } else {
    TQ_CHECK_ARG(o.weights == "fp32", "weights '{}' on the CPU (fp32 only; fp16 / bf16 with --device cuda)", o.weights);
    kv = tq::model::make_kv_store(model->kv_shape(), o.kv, so);
  }
  const auto forward = [&](const int32_t* toks, int n, float* out) {
    if (gpu) gpu->forward(toks, n, *kv, out, false);
    else model->forward(toks, n, *kv, out, false);
  };
  std::vector<float> logits(size_t(c.n_vocab));
  std::mt19937_64 rng(o.seed);

  std::fputs(o.prompt.c_str(), stdout);
  std::fflush(stdout);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  forward(ids.data(), int(ids.size()), logits.data());  // prompt (prefill)
  const auto t1 = Clock::now();
  int produced = 0, steps = 0;  // steps: single-token forward passes (decode speed)
  bool first_piece = o.prompt.empty();
  for (; produced < o.n; ++produced) {
    const int32_t next = tq::model::sample_token(logits.data(), c.n_vocab, o.temp, rng);
    if (next == tok.eos()) break;
    std::string piece = tok.piece(next);
    // Without a prompt the first word carries the space that normalization puts before a text.
    if (first_piece && tok.add_space_prefix() && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    first_piece = first_piece && piece.empty();
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    ids.push_back(next);
    if (produced + 1 < o.n) {
      forward(&ids.back(), 1, logits.data());
      ++steps;
    }
  }
  const auto t2 = Clock::now();
  std::fputc('\n', stdout);
  const double prefill = std::chrono::duration<double>(t1 - t0).count();
  const double gen = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr,
               "tq generate: %d tokens, decode %.1f tokens/s (%d steps in %.3f s), prompt %zu tokens in %.3f s; "
               "kv %s: %zu bytes/token (fp16: %d); %s, %d threads\n",
               produced, gen > 0 ? steps / gen : 0.0, steps, gen, ids.size() - size_t(produced), prefill,
               kv->name().c_str(), kv->bytes_per_token(), c.n_layer * c.n_kv_head * c.head_dim * 4,
               (gpu ? "cuda, " + o.weights + " weights" : o.device).c_str(), tq::model::max_threads());
  return 0;
}

tq::cli::Registrar reg("generate", "Generate text with a GGUF llama model on a compressed KV cache",
                       [](CLI::App& app) {
                         auto o = std::make_shared<Opts>();
                         app.add_option("--model", o->model, "GGUF model (llama architecture)")->required();
                         app.add_option("--prompt", o->prompt, "prompt text (empty: start from BOS)");
                         app.add_option("-n,--n-tokens", o->n, "tokens to generate")->check(CLI::Range(0, 1 << 20));
                         app.add_option("--kv", o->kv, "KV cache codec: kXvY, k=CODEC,v=CODEC, or one codec");
                         app.add_option("--temp", o->temp, "sampling temperature (0: greedy)")
                             ->check(CLI::Range(0.0, 100.0));
                         app.add_option("--seed", o->seed, "sampling seed");
                         tq::cli::add_kv_store_options(app, o->store);
                         tq::cli::add_device_options(app, o->device, o->weights);
                         app.add_option("--threads", o->threads, "threads (0: all cores)");
                         return [o]() { return run(*o); };
                       });

}  // namespace
