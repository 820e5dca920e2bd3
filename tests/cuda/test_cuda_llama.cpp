// The llama forward pass on CUDA (CudaLlama: cuBLAS matmuls, our kernels, the GPU KV stores) against
// the CPU forward (LlamaModel::forward) on tiny random models written by the test, head_dim 64 and
// 128: a prefill, single-token steps, then a multi-token batch. Plus the error paths, and the CLI's
// `--device cuda`, which must fail cleanly (exit 1, one message) where there is no GPU.
//
// Tolerances (relative L2 of the logits; measured on the H200 in brackets):
// - fp32 cache: both sides compute in float with different summation orders (cuBLAS vs the CPU's
//   SIMD dot products, float vs double attention sums): ~1e-7 per op; 1e-5 (4.4e-7).
// - fp16 cache: the stored rows are the same fp16 values on both sides; the difference is the
//   CUDA decode kernel, which rounds q, the centroids and p to fp16 (2^-11 relative each): ~5e-4
//   relative on the attention output (test_cuda_kv_store.cpp). The attention output is one of the
//   two summands of each residual update and passes a normalization before the logits, so the
//   logits move by less than that: 1e-3 (1.3e-4). A real bug (a wrong position, head or RoPE
//   angle) moves logits by O(1).
// - tq3: the codes are byte-identical unless a float round-off moves a coordinate across a cell
//   boundary (rare), so the GPU-vs-CPU difference must stay well below the codec's own error. The
//   GPU scores TurboQuant K in int8 (q per row and the centroids rounded to int8, 0.4-2% on the
//   attention output in test_decode_attention.cpp), the CPU in int8 or fp32 with other roundings:
//   under a quarter of the CPU tq3-vs-fp32 difference, 7e-2 to 1.4e-1 here (H200, commit of the
//   int8 kernel: up to 1.2e-2 = 0.12 of it; 3.0e-3 with the earlier fp16 scores).
// - fp16 / bf16 weights (fp32 cache): weights and each matmul's input are rounded to 2^-11 / 2^-8
//   relative (rms ~1.6e-4 / 1.3e-3 per rounding); about ten matmuls in a row give ~5e-4 / ~4e-3 on
//   the logits: 3e-3 / 2.5e-2 (6.0e-4 / 5.6e-3). They must also differ from fp32 (> 1e-5), or the
//   option did nothing.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "model/gguf_writer.h"
#include "test_util.h"
#include "turboquant/error.h"
#include "turboquant/model/cuda_llama.h"
#include "turboquant/model/gguf.h"
#include "turboquant/model/llama.h"

#if defined(TQ_HAVE_CUDA)
#include "turboquant/cuda/decode.h"
#endif

namespace {

using namespace tq::model;

bool gpu_present() {
#if defined(TQ_HAVE_CUDA)
  return tq::cuda::device_available();
#else
  return false;
#endif
}

// A tiny llama GGUF: SPM byte-fallback vocabulary (<unk> <s> </s>, 256 bytes, 4 pieces), weights
// N(0, 1/in) so that activations and attention scores sit at unit scale, as in a trained model.
struct TinySpec {
  int dim = 256, n_layer = 2, n_head = 4, n_kv = 2, ffn = 384;
  bool tied = false, biases = false;
  uint32_t seed = 1;
};

// The two models every GPU comparison runs: head_dim 64 with untied output and biases; head_dim 128
// with tied output and no biases.
std::vector<TinySpec> two_specs() {
  TinySpec a;
  a.biases = true;
  TinySpec b;
  b.dim = 512;
  b.ffn = 512;
  b.tied = true;
  b.seed = 2;
  return {a, b};
}

std::vector<uint8_t> write_tiny(const TinySpec& s) {
  tqtest::GgufWriter w;
  w.kv_str("general.architecture", "llama");
  w.kv_u32("llama.block_count", uint32_t(s.n_layer));
  w.kv_u32("llama.embedding_length", uint32_t(s.dim));
  w.kv_u32("llama.feed_forward_length", uint32_t(s.ffn));
  w.kv_u32("llama.attention.head_count", uint32_t(s.n_head));
  w.kv_u32("llama.attention.head_count_kv", uint32_t(s.n_kv));
  w.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.kv_f32("llama.rope.freq_base", 10000.0f);
  w.kv_str("tokenizer.ggml.model", "llama");
  const std::vector<std::string> vocab = tqtest::byte_fallback_vocab();
  w.kv_strs("tokenizer.ggml.tokens", vocab);
  w.kv_arr<float>("tokenizer.ggml.scores", 6, std::vector<float>(vocab.size(), 0.0f));
  w.kv_u32("tokenizer.ggml.bos_token_id", 1);
  w.kv_u32("tokenizer.ggml.eos_token_id", 2);

  std::mt19937 rng(s.seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  auto add = [&](const std::string& name, std::vector<uint64_t> ne, float sd, float mean = 0) {
    size_t n = 1;
    for (auto x : ne) n *= x;
    std::vector<float> v(n);
    for (auto& x : v) x = mean + sd * g(rng);
    w.tensor_f32(name, ne, v);
  };
  const uint64_t d = uint64_t(s.dim), hd = d / uint64_t(s.n_head), q = uint64_t(s.n_head) * hd,
                 kv = uint64_t(s.n_kv) * hd, ff = uint64_t(s.ffn), V = vocab.size();
  const auto isd = [](uint64_t in) { return float(1.0 / std::sqrt(double(in))); };
  add("token_embd.weight", {d, V}, 1.0f);
  add("output_norm.weight", {d}, 0.1f, 1.0f);
  if (!s.tied) add("output.weight", {d, V}, isd(d));
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {d}, 0.1f, 1.0f);
    add(p + "attn_q.weight", {d, q}, isd(d));
    add(p + "attn_k.weight", {d, kv}, isd(d));
    add(p + "attn_v.weight", {d, kv}, isd(d));
    add(p + "attn_output.weight", {q, d}, isd(q));
    if (s.biases) {
      add(p + "attn_q.bias", {q}, 0.1f);
      add(p + "attn_k.bias", {kv}, 0.1f);
      add(p + "attn_v.bias", {kv}, 0.1f);
      add(p + "attn_output.bias", {d}, 0.1f);
    }
    add(p + "ffn_norm.weight", {d}, 0.1f, 1.0f);
    add(p + "ffn_gate.weight", {d, ff}, isd(d));
    add(p + "ffn_up.weight", {d, ff}, isd(d));
    add(p + "ffn_down.weight", {ff, d}, isd(ff));
  }
  return w.bytes();
}

LlamaModel load(const TinySpec& s) {
  const auto bytes = write_tiny(s);
  return LlamaModel(tq::gguf::File::parse(bytes.data(), bytes.size()));
}

using tq::testing::rel_l2;  // tests/test_util.h

std::unique_ptr<KvStore> cpu_store(const LlamaModel& m, const std::string& codec, int capacity) {
  if (codec == "fp32") return std::make_unique<ExactKvStore>(m.kv_shape());
  KvStoreOptions o;  // the paged CPU cache with reference attention: decode every row, double sums
  o.kind = "cache";
  o.attn = "reference";
  o.capacity = capacity;
  return make_kv_store(m.kv_shape(), codec, o);
}

// The call sequence: a 37-token prefill, 5 single-token steps, a 6-token batch (all logits of the
// batches, the last token's of the steps).
struct Step {
  int n;
  bool all;
};
const std::vector<Step> kSteps = {{37, true}, {1, false}, {1, false}, {1, false}, {1, false}, {1, false}, {6, true}};
constexpr int kCapacity = 64;

// Logits of every call of kSteps, concatenated.
template <class Fwd>
std::vector<std::vector<float>> run_steps(const LlamaModel& m, Fwd&& fwd, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, m.config().n_vocab - 1);
  std::vector<std::vector<float>> out;
  for (const Step& s : kSteps) {
    std::vector<int32_t> ids(size_t(s.n));
    for (auto& t : ids) t = tok(rng);
    std::vector<float> lg(size_t(s.all ? s.n : 1) * m.config().n_vocab, NAN);
    fwd(ids.data(), s.n, lg.data(), s.all);
    out.push_back(std::move(lg));
  }
  return out;
}

TEST(CudaLlama, MatchesTheCpuForwardOnPrefillStepsAndBatch) {
  if (!gpu_present()) GTEST_SKIP() << "no CUDA device (or a build without CUDA): GPU tests skipped";
  for (const TinySpec& spec : two_specs()) {
    const LlamaModel m = load(spec);
    const int hd = m.config().head_dim;
    const CudaLlama gpu(m);
    EXPECT_GT(gpu.weight_bytes(), size_t(m.n_params()) * 4 - 1);
    std::map<std::string, std::vector<std::vector<float>>> cpu_logits;
    for (const std::string codec : {"fp32", "fp16", "tq3"}) {
      auto ck = cpu_store(m, codec, kCapacity);
      auto gk = gpu.make_kv_store(codec, kCapacity);
      const auto cl = run_steps(m, [&](const int32_t* t, int n, float* o, bool all) { m.forward(t, n, *ck, o, all); }, 7);
      const auto gl =
          run_steps(m, [&](const int32_t* t, int n, float* o, bool all) { gpu.forward(t, n, *gk, o, all); }, 7);
      cpu_logits[codec] = cl;
      EXPECT_EQ(gk->length(0), ck->length(0));
      EXPECT_EQ(gk->length(m.config().n_layer - 1), 37 + 5 + 6);
      for (size_t i = 0; i < kSteps.size(); ++i) {
        const double r = rel_l2(gl[i], cl[i]);
        double tol = codec == "fp32" ? 1e-5 : 1e-3;
        if (codec == "tq3") tol = 0.25 * rel_l2(cpu_logits["tq3"][i], cpu_logits["fp32"][i]);
        EXPECT_LT(r, tol) << codec << " head_dim " << hd << " call " << i << " (n " << kSteps[i].n << ")";
        std::printf("[ measured ] head_dim %d %s call %zu n %d: rel L2 GPU vs CPU %.2e (tolerance %.2e)\n", hd,
                    codec.c_str(), i, kSteps[i].n, r, tol);
      }
    }
  }
}

TEST(CudaLlama, HalfWeightsFollowTheFp32Forward) {
  if (!gpu_present()) GTEST_SKIP() << "no CUDA device (or a build without CUDA): GPU tests skipped";
  for (const TinySpec& spec : two_specs()) {
    const LlamaModel m = load(spec);
    auto ck = cpu_store(m, "fp32", kCapacity);
    const auto cl = run_steps(m, [&](const int32_t* t, int n, float* o, bool all) { m.forward(t, n, *ck, o, all); }, 9);
    for (const std::string w : {"fp16", "bf16"}) {
      const CudaLlama gpu(m, w);
      EXPECT_EQ(gpu.weights(), w);
      auto gk = gpu.make_kv_store("fp32", kCapacity);
      const auto gl =
          run_steps(m, [&](const int32_t* t, int n, float* o, bool all) { gpu.forward(t, n, *gk, o, all); }, 9);
      const double tol = w == "fp16" ? 3e-3 : 2.5e-2;
      for (size_t i = 0; i < kSteps.size(); ++i) {
        const double r = rel_l2(gl[i], cl[i]);
        EXPECT_LT(r, tol) << w << " head_dim " << m.config().head_dim << " call " << i;
        EXPECT_GT(r, 1e-5) << w << ": no different from fp32 weights";
        std::printf("[ measured ] head_dim %d %s-weights call %zu n %d: rel L2 GPU vs CPU %.2e (tolerance %.2e)\n",
                    m.config().head_dim, w.c_str(), i, kSteps[i].n, r, tol);
      }
    }
  }
}

TEST(CudaLlama, ErrorsAtConstructionAndOnBadInput) {
  if (!gpu_present()) GTEST_SKIP() << "no CUDA device (or a build without CUDA): GPU tests skipped";
  TinySpec small;  // head_dim 16: no CUDA attention kernel
  small.dim = 64;
  const LlamaModel m16 = load(small);
  try {
    const CudaLlama g(m16);
    ADD_FAILURE() << "head_dim 16 accepted";
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("head_dim 16"), std::string::npos) << e.what();
  }
  const LlamaModel m = load(TinySpec{});
  EXPECT_THROW(CudaLlama(m, "fp8"), tq::Error);
  const CudaLlama gpu(m);
  EXPECT_THROW(gpu.make_kv_store("k5v4", 64), tq::Error);  // a codec pair without a CUDA kernel
  EXPECT_THROW(gpu.make_kv_store("q4", 64), tq::Error);
  std::vector<float> lg(size_t(m.config().n_vocab));
  const int32_t ok = 5, bad = m.config().n_vocab;
  auto cpu = cpu_store(m, "fp16", 8);
  EXPECT_THROW(gpu.forward(&ok, 1, *cpu, lg.data(), false), tq::Error);  // a CPU store: no silent PCIe path
  auto kv = gpu.make_kv_store("fp16", 64);  // one page of 64 positions
  EXPECT_THROW(gpu.forward(&bad, 1, *kv, lg.data(), false), tq::Error);
  EXPECT_EQ(kv->length(0), 0);
  const std::vector<int32_t> ids(64, 7);
  gpu.forward(ids.data(), 60, *kv, lg.data(), false);
  EXPECT_THROW(gpu.forward(ids.data(), 5, *kv, lg.data(), false), tq::Error);  // beyond the capacity
  EXPECT_EQ(kv->length(0), 60);  // refused before layer 0 appended anything
  gpu.forward(ids.data(), 4, *kv, lg.data(), false);
  EXPECT_EQ(kv->length(m.config().n_layer - 1), 64);
  for (float x : lg) ASSERT_TRUE(std::isfinite(x));
}

TEST(CudaLlama, FailsCleanlyWithoutGpu) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present: the error path of a machine without one is not reachable";
  const LlamaModel m = load(TinySpec{});
  try {
    const CudaLlama g(m);
    ADD_FAILURE() << "constructed without a GPU";
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_cuda_kv_store(m.kv_shape(), "fp16", 16), tq::Error);
}

// `tq perplexity|generate --device cuda`: runs on a GPU; elsewhere exit status 1 and one line
// naming CUDA (no crash, no CPU fallback).
TEST(CudaLlamaCli, DeviceCuda) {
  const auto dir = std::filesystem::temp_directory_path() / ("tq_cuda_llama_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string model = (dir / "tiny.gguf").string(), text = (dir / "text.txt").string();
  {
    const auto bytes = write_tiny(TinySpec{});
    std::ofstream(model, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    std::ofstream t(text);
    for (int i = 0; i < 20; ++i) t << "a ba ab b a, ";
  }
  const auto p = tq::testing::run_cli("perplexity --model " + model + " --text " + text +
                                      " --ctx 16 --kv fp16 --max-tokens 60 --device cuda --weights fp16 --json --no-progress");
  const auto g = tq::testing::run_cli("generate --model " + model + " -n 4 --kv tq3 --device cuda");
  if (gpu_present()) {
    ASSERT_EQ(p.status, 0) << p.out;
    const auto j = nlohmann::json::parse(p.out);
    EXPECT_EQ(j["device"], "cuda");
    EXPECT_EQ(j["weights"], "fp16");
    EXPECT_NE(j["kv"].get<std::string>().find("cuda"), std::string::npos) << j["kv"];
    EXPECT_EQ(j["kv_ref"], "fp32 (exact, cuda)");
    EXPECT_NEAR(j["ppl_ratio"].get<double>(), 1.0, 1e-2);
    EXPECT_EQ(g.status, 0) << g.out;
    EXPECT_NE(g.out.find("cuda"), std::string::npos) << g.out;
  } else {
    for (const auto* r : {&p, &g}) {
      EXPECT_EQ(r->status, 1) << r->out;
      EXPECT_NE(r->out.find("CUDA"), std::string::npos) << r->out;
      EXPECT_EQ(std::count(r->out.begin(), r->out.end(), '\n'), 1) << r->out;
    }
  }
  // 16-bit weights are a GPU option.
  const auto w = tq::testing::run_cli("generate --model " + model + " -n 1 --weights bf16");
  EXPECT_EQ(w.status, 1) << w.out;
  EXPECT_NE(w.out.find("fp32 only"), std::string::npos) << w.out;
  // A bad device name is a usage error, not a crash.
  const auto bad = tq::testing::run_cli("generate --model " + model + " -n 1 --device tpu");
  EXPECT_NE(bad.status, 0);
  EXPECT_LT(bad.status, 128) << bad.out;
  std::filesystem::remove_all(dir);
}

}  // namespace
