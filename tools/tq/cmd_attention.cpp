// tools/tq/cmd_attention.cpp — `tq attention`: decode attention of dense .npy arrays through the
// compressed KV cache: Q [B, Hq, D], K and V [B, Hkv, T, D] float32 -> O [B, Hq, D] float32, one query
// per sequence at the last position, K and V encoded with --codec-k / --codec-v.
#include <cmath>
#include <cstdio>
#include <memory>

#include "command.h"
#include "turboquant/attention.h"
#include "turboquant/error.h"
#include "turboquant/npy.h"

namespace {

struct Opts {
  std::string q, k, v, out, codec_k = "fp32", codec_v = "fp32";
  float scale = 0;
  int threads = 0;
  bool reference = false, fp32_scores = false;
};

tq::NpyArray load(const std::string& path, size_t dims, const char* what) {
  tq::NpyArray a = tq::npy_load(path);
  TQ_CHECK_ARG(a.dtype == tq::DType::kF32, "--{} {}: expected float32, got {}", what, path, tq::dtype_name(a.dtype));
  TQ_CHECK_ARG(a.shape.size() == dims, "--{} {}: expected {} dimensions, got {}", what, path, dims, a.shape.size());
  for (auto s : a.shape) TQ_CHECK_ARG(s >= 1 && s <= (int64_t(1) << 31), "--{} {}: bad dimension {}", what, path, s);
  return a;
}

int run(const Opts& o) {
  const tq::NpyArray q = load(o.q, 3, "q"), k = load(o.k, 4, "k"), v = load(o.v, 4, "v");
  const int64_t B = q.shape[0], Hq = q.shape[1], D = q.shape[2], Hkv = k.shape[1], T = k.shape[2];
  TQ_CHECK_ARG(k.shape == v.shape, "--k and --v must have the same shape");
  TQ_CHECK_ARG(k.shape[0] == B, "--k has batch {} but --q has {}", k.shape[0], B);
  TQ_CHECK_ARG(k.shape[3] == D, "--k has head dim {} but --q has {}", k.shape[3], D);
  TQ_CHECK_ARG(Hq % Hkv == 0, "query heads ({}) must be a multiple of KV heads ({})", Hq, Hkv);
  TQ_CHECK_ARG(std::isfinite(o.scale) && o.scale >= 0, "--scale must be finite and >= 0 (0: 1/sqrt(D))");
  const std::vector<float> qf = q.to_f32(), kf = k.to_f32(), vf = v.to_f32();
  std::vector<float> out(qf.size());
  tq::AttentionOptions opt;
  opt.threads = o.threads;
  opt.int8_scores = opt.bf16_values = !o.fp32_scores;
  tq::attention_dense(qf.data(), kf.data(), vf.data(), int(B), int(Hq), int(Hkv), int(T), int(D), o.codec_k, o.codec_v,
                      o.scale, out.data(), o.reference, opt);
  tq::npy_save_f32(o.out, out.data(), {B, Hq, D});
  return 0;
}

tq::cli::Registrar reg("attention", "Decode attention of .npy Q [B,Hq,D], K/V [B,Hkv,T,D] through the compressed KV cache",
                       [](CLI::App& app) -> tq::cli::Runner {
  auto o = std::make_shared<Opts>();
  app.add_option("--q", o->q, "Queries, float32 [B, Hq, D]")->required();
  app.add_option("--k", o->k, "Keys, float32 [B, Hkv, T, D]")->required();
  app.add_option("--v", o->v, "Values, float32 [B, Hkv, T, D]")->required();
  app.add_option("--out", o->out, "Output, float32 [B, Hq, D]")->required();
  app.add_option("--codec-k", o->codec_k, "Key codec (fp32, fp16, tq4, tq3, tq2.5, tq3p, q8, ...)");
  app.add_option("--codec-v", o->codec_v, "Value codec");
  app.add_option("--scale", o->scale, "Softmax scale (default 1/sqrt(D))");
  app.add_option("--threads", o->threads, "Threads (0: all)");
  app.add_flag("--fp32-scores", o->fp32_scores, "fp32 TurboQuant kernels instead of int8 K scores / bf16 V sums (AVX-512 VNNI/BF16 CPUs)");
  app.add_flag("--reference", o->reference, "Use the decode + float64 reference instead of the fused kernels");
  return [o] { return run(*o); };
});

}  // namespace
