// tools/tq/cmd_demo.cpp — `tq demo`: one screen of what each codec gives on this machine.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "command.h"
#include "turboquant/codec.h"
#include "turboquant/codebook.h"
#include "turboquant/error.h"
#include "turboquant/rotation.h"

namespace {

struct Opts {
  int dim = 128;
  int n = 20000;
  std::string codecs = "fp32,fp16,bf16,fp8,q8,q4,q4r,tq8,tq4,tq3.5,tq3,tq2.5,tq2,tq1,tq4p,tq3p";
};

// Built-in data: LLM-like key vectors — Gaussian with a few outlier channels 10-30x larger, so that
// the rotation has something to do — and plain isotropic Gaussian vectors.
std::vector<float> make_data(int n, int d, bool outliers, uint64_t seed) {
  tq::Rng rng(seed);
  std::vector<float> scale(d, 1.0f);
  if (outliers)
    for (int j = 0; j < d; j += 37) scale[j] = float(10 + 20 * rng.uniform());
  std::vector<float> x(size_t(n) * d);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(rng.normal()) * scale[i % d];
  return x;
}

int run(const Opts& o) {
  TQ_CHECK_ARG(o.dim >= 2 && o.n >= 1, "--dim >= 2 and --n >= 1 required");
  const auto iso = make_data(o.n, o.dim, false, 1), keys = make_data(o.n, o.dim, true, 2);
  std::printf("turboquant demo — d=%d, %d vectors per data set, CPU (1 thread)\n", o.dim, o.n);
#if defined(TQ_HAVE_CUDA)
  std::printf("(CUDA backend compiled in; CUDA figures come from the kernel benchmarks, docs/BENCHMARKS.md)\n");
#endif
  std::printf("rel. error = E||x - x̂||² / E||x||²; optimum = Lloyd-Max distortion for the exact coordinate law\n\n");
  std::printf("%-8s %9s %8s %11s %11s %9s %12s\n", "codec", "bits/val", "vs fp16", "rel.err iso", "rel.err keys",
              "optimum", "encode MB/s");
  std::string list = o.codecs;
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t c = list.find(',', pos);
    const std::string name = list.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
    pos = c == std::string::npos ? list.size() + 1 : c + 1;
    if (name.empty()) continue;
    const auto spec = tq::parse_codec(name);
    std::vector<uint8_t> codes;
    std::vector<float> y(iso.size());
    double err[2];
    double secs = 0;
    std::shared_ptr<const tq::Codec> codec;
    for (int k = 0; k < 2; ++k) {
      const auto& x = k == 0 ? iso : keys;
      // Fractional codecs pick their outlier channels from data: calibrate on the first 1000 rows.
      codec = tq::Codec::create(spec, o.dim, x.data(), size_t(std::min(o.n, 1000)));
      codes.resize(codec->code_size() * o.n);
      const auto t0 = std::chrono::steady_clock::now();
      codec->encode(x.data(), o.n, o.dim, codes.data());
      secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      codec->decode(codes.data(), o.n, y.data(), o.dim);
      double num = 0, den = 0;
      for (size_t i = 0; i < x.size(); ++i) { num += double(x[i] - y[i]) * (x[i] - y[i]); den += double(x[i]) * x[i]; }
      err[k] = num / den;
    }
    std::string opt = "-";
    if (spec.id == tq::CodecId::kTqMse && !spec.fractional)
      opt = fmt::format("{:.4g}", tq::Codebook::get(o.dim, spec.bits).distortion());
    const double mbps = 2.0 * o.n * o.dim * 4 / secs / 1e6;
    std::printf("%-8s %9.3f %7.2fx %11.4g %11.4g %9s %12.1f\n", name.c_str(), codec->bits_per_value(),
                16.0 / codec->bits_per_value(), err[0], err[1], opt.c_str(), mbps);
  }
  std::printf("\nbits/val counts everything stored (codes + norms); 'vs fp16' = compression against fp16.\n");
  return 0;
}

tq::cli::Registrar reg("demo", "One-screen table of what each codec gives (bits, compression, distortion, speed)",
                       [](CLI::App& app) -> tq::cli::Runner {
  auto o = std::make_shared<Opts>();
  app.add_option("--dim", o->dim, "Vector dimension");
  app.add_option("--n", o->n, "Vectors per data set");
  app.add_option("--codecs", o->codecs, "Comma-separated codec list");
  return [o] { return run(*o); };
});

}  // namespace
