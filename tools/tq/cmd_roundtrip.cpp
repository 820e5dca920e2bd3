// tools/tq/cmd_roundtrip.cpp — `tq roundtrip`: encode + decode a 2-D float32 .npy with any codec,
// for checking the codec from outside (numpy, another implementation).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "command.h"
#include "turboquant/codec.h"
#include "turboquant/error.h"
#include "turboquant/npy.h"

namespace {

struct Opts {
  std::string in, out, codec = "tq3", rotation, norm;
  long long seed = -1;
  bool stats = false;
};

int run(const Opts& o) {
  tq::NpyArray a = tq::npy_load(o.in);
  TQ_CHECK_ARG(a.shape.size() == 2, "{}: expected a 2-D array [n, d], got {} dimensions", o.in, a.shape.size());
  TQ_CHECK_ARG(a.dtype == tq::DType::kF32, "{}: expected float32, got {}", o.in, tq::dtype_name(a.dtype));
  const size_t n = size_t(a.shape[0]);
  const int d = int(a.shape[1]);
  TQ_CHECK_ARG(d >= 1, "{}: dimension must be >= 1", o.in);
  std::string cs = o.codec;
  if (!o.rotation.empty()) cs += ":rot=" + o.rotation;
  if (!o.norm.empty()) cs += ":norm=" + o.norm;
  if (o.seed >= 0) cs += ":seed=" + std::to_string(o.seed);
  auto codec = tq::Codec::create(tq::parse_codec(cs), d);
  const std::vector<float> x = a.to_f32();
  std::vector<uint8_t> codes(codec->code_size() * n);
  std::vector<float> y(x.size());
  const auto t0 = std::chrono::steady_clock::now();
  codec->encode(x.data(), n, size_t(d), codes.data());
  const auto t1 = std::chrono::steady_clock::now();
  codec->decode(codes.data(), n, y.data(), size_t(d));
  const auto t2 = std::chrono::steady_clock::now();
  tq::npy_save_f32(o.out, y.data(), {int64_t(n), int64_t(d)});
  if (o.stats) {
    double rel = 0, num = 0, den = 0;
    size_t nz = 0;
    for (size_t i = 0; i < n; ++i) {
      double e = 0, s = 0;
      for (int j = 0; j < d; ++j) {
        const double dx = double(x[i * d + j]) - y[i * d + j];
        e += dx * dx;
        s += double(x[i * d + j]) * x[i * d + j];
      }
      num += e;
      den += s;
      if (s > 0) { rel += e / s; ++nz; }
    }
    const nlohmann::json j = {
        {"codec", codec->spec().name()}, {"n", n}, {"dim", d}, {"bits_per_value", codec->bits_per_value()},
        {"bytes_per_vector", codec->code_size()}, {"mean_rel_sq_error", nz ? rel / double(nz) : 0.0},
        {"total_rel_sq_error", den > 0 ? num / den : 0.0},
        {"encode_s", std::chrono::duration<double>(t1 - t0).count()},
        {"decode_s", std::chrono::duration<double>(t2 - t1).count()}};
    std::printf("%s\n", j.dump(1).c_str());
  }
  return 0;
}

tq::cli::Registrar reg("roundtrip", "Encode and decode a 2-D float32 .npy (rows = vectors) with a codec",
                       [](CLI::App& app) -> tq::cli::Runner {
  auto o = std::make_shared<Opts>();
  app.add_option("--in", o->in, "Input .npy, float32 [n, d]")->required();
  app.add_option("--out", o->out, "Output .npy, float32 [n, d]")->required();
  app.add_option("--codec", o->codec, "Codec string (tq3, tq2.5, tq4p, fp16, ...)");
  app.add_option("--rotation", o->rotation, "hadamard | dense | auto")->check(CLI::IsMember({"hadamard", "dense", "auto", "none"}));
  app.add_option("--seed", o->seed, "Rotation seed");
  app.add_option("--norm", o->norm, "fp16 | fp32")->check(CLI::IsMember({"fp16", "fp32"}));
  app.add_flag("--stats", o->stats, "Print JSON stats (bits/value, bytes/vector, mean relative squared error)");
  return [o] { return run(*o); };
});

}  // namespace
