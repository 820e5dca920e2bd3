// turboquant/model/llama.h — the llama architecture (GGUF general.architecture = "llama") on the
// CPU, with the KV cache behind the KvStore interface.
//
// Per layer (x is [n, dim] for n new tokens at positions p0 .. p0+n-1, p0 = kv.length(0)):
//   h = RMSNorm(x) * attn_norm;  q = h Wq^T [n, Hq*hd], k = h Wk^T, v = h Wv^T [n, Hkv*hd] (+ biases)
//   RoPE(q), RoPE(k) (consecutive pairs, see ops.h);  kv.append(k, v);  a = kv.attend(q)
//   x += a Wo^T;  h = RMSNorm(x) * ffn_norm;  x += (silu(h Wg^T) * (h Wu^T)) Wd^T
// then logits = RMSNorm(x) * output_norm · Wout^T, Wout = output.weight or, when the file has
// none, token_embd.weight (tied embeddings). Weights are dequantized to fp32 on load.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "turboquant/model/kv_store.h"
#include "turboquant/model/ops.h"
#include "turboquant/model/tokenizer.h"

namespace tq::gguf { class File; }

namespace tq::model {

struct LlamaConfig {
  int n_vocab = 0, dim = 0, n_layer = 0, n_head = 0, n_kv_head = 0, head_dim = 0, ffn = 0;
  int n_ctx_train = 0;       // llama.context_length (informative; longer contexts are allowed)
  float eps = 1e-5f;         // llama.attention.layer_norm_rms_epsilon
  int n_rot = 0;             // llama.rope.dimension_count (default head_dim)
  double rope_theta = 10000; // llama.rope.freq_base
  double rope_freq_scale = 1;  // 1 / llama.rope.scaling.factor for "linear" scaling
  // Reads llama.* keys; kUnsupported for another architecture or rope scaling type,
  // kInvalidArgument for missing or inconsistent values.
  static LlamaConfig from_gguf(const gguf::File& f);
  KvShape kv_shape() const;
};

class LlamaModel {
 public:
  // Maps the file, reads config, tokenizer and weights (each tensor's shape checked).
  static std::unique_ptr<LlamaModel> load(const std::string& path);
  explicit LlamaModel(const gguf::File& f);

  const LlamaConfig& config() const { return cfg_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  KvShape kv_shape() const { return cfg_.kv_shape(); }
  size_t n_params() const;

  // Runs tokens [n] at positions kv.length(0) .. +n-1, appending their K/V to kv (kv.shape() must
  // be kv_shape()). logits: [n, vocab] when all_logits, else [vocab] for the last token only.
  void forward(const int32_t* tokens, int n, KvStore& kv, float* logits, bool all_logits = true) const;

 private:
  friend class CudaLlama;  // uploads the weights below (cuda_llama.h)
  struct Layer {
    std::vector<float> attn_norm, wq, wk, wv, wo, bq, bk, bv, bo, ffn_norm, w_gate, w_up, w_down;
  };
  LlamaConfig cfg_;
  std::unique_ptr<Tokenizer> tok_;
  std::vector<float> tok_embd_, out_norm_, output_;  // output_ empty: tied to tok_embd_
  std::vector<float> rope_freqs_;                    // empty unless rope_freqs.weight exists
  std::vector<Layer> layers_;
};

}  // namespace tq::model
