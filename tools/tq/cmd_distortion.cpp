// tools/tq/cmd_distortion.cpp — `tq distortion`: measured vs theoretical TurboQuant distortion on
// random unit vectors (mse: E||u - û||^2 against the Lloyd-Max optimum and the paper's bounds;
// prod: inner-product bias and variance against the paper's bound).
#include <cmath>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "command.h"
#include "turboquant/codebook.h"
#include "turboquant/codec.h"
#include "turboquant/error.h"
#include "turboquant/rotation.h"

namespace {

struct Opts {
  int dim = 128;
  std::vector<int> bits{1, 2, 3, 4};
  std::string mode = "mse";
  std::string rot = "auto";
  int n = 20000;
  uint64_t seed = 1;
  bool json = false;
};

int run(const Opts& o) {
  TQ_CHECK_ARG(o.dim >= 2, "--dim must be >= 2");
  TQ_CHECK_ARG(o.n >= 10, "--n must be >= 10");
  TQ_CHECK_ARG(o.mode == "mse" || o.mode == "prod", "--mode must be mse or prod");
  const int d = o.dim;
  tq::Rng rng(o.seed);
  std::vector<float> x(size_t(o.n) * d), y(size_t(o.n) * d);
  for (int i = 0; i < o.n; ++i) {  // uniform on the sphere: normalized Gaussians
    double s = 0;
    for (int j = 0; j < d; ++j) { x[size_t(i) * d + j] = float(rng.normal()); s += double(x[size_t(i) * d + j]) * x[size_t(i) * d + j]; }
    for (int j = 0; j < d; ++j) x[size_t(i) * d + j] = float(x[size_t(i) * d + j] / std::sqrt(s));
    for (int j = 0; j < d; ++j) y[size_t(i) * d + j] = float(rng.normal() / std::sqrt(double(d)));
  }
  nlohmann::json rows = nlohmann::json::array();
  for (int b : o.bits) {
    TQ_CHECK_ARG(b >= 1 && b <= 8, "--bits: {} is not in 1..8", b);
    tq::CodecSpec spec = tq::parse_codec(fmt::format("tq{}{}:norm=fp32:rot={}", b, o.mode == "prod" ? "p" : "", o.rot));
    auto codec = tq::Codec::create(spec, d);
    std::vector<uint8_t> codes(codec->code_size() * o.n);
    std::vector<float> xh(x.size());
    codec->encode(x.data(), o.n, d, codes.data());
    codec->decode(codes.data(), o.n, xh.data(), d);
    double mse = 0, bias = 0, var = 0, ip2 = 0;
    for (int i = 0; i < o.n; ++i) {
      double e = 0, ip = 0, iph = 0;
      for (int j = 0; j < d; ++j) {
        const size_t k = size_t(i) * d + j;
        e += double(x[k] - xh[k]) * (x[k] - xh[k]);
        ip += double(y[k]) * x[k];
        iph += double(y[k]) * xh[k];
      }
      mse += e;
      bias += iph - ip;
      var += (iph - ip) * (iph - ip);
      ip2 += ip * ip;
    }
    mse /= o.n;
    bias /= o.n;
    var /= o.n;
    const double rms_ip = std::sqrt(ip2 / o.n);
    const double lower = std::pow(4.0, -b), upper = std::sqrt(3.0) * M_PI / 2 * std::pow(4.0, -b);
    nlohmann::json r = {{"bits", b}, {"dim", d}, {"mode", o.mode}, {"measured_mse", mse},
                        {"paper_lower_bound", lower}, {"paper_upper_bound", upper}};
    if (o.mode == "mse") {
      const double theory = tq::Codebook::get(d, b).distortion();
      r["theory_mse"] = theory;
      r["ratio"] = mse / theory;
    } else {
      // y has E||y||^2 = 1. Paper: D_prod <= sqrt(3) pi^2 ||y||^2 / d * 4^-b.
      const double bound = std::sqrt(3.0) * M_PI * M_PI / d * std::pow(4.0, -b);
      const double mse_stage = b >= 2 ? tq::Codebook::get(d, b - 1).distortion() : 1.0;
      r["ip_bias"] = bias;
      r["ip_rel_bias"] = bias / rms_ip;
      r["ip_variance"] = var;
      r["ip_variance_bound"] = bound;
      r["ip_variance_theory"] = M_PI / 2 / d * mse_stage;  // Var <= pi/(2d) ||y||^2 ||r||^2 (Gaussian S)
    }
    rows.push_back(r);
  }
  if (o.json) {
    std::printf("%s\n", nlohmann::json({{"results", rows}}).dump(1).c_str());
  } else if (o.mode == "mse") {
    std::printf("TurboQuant-mse distortion E||u-û||^2, d=%d, %d random unit vectors\n", d, o.n);
    std::printf("%5s %12s %12s %8s %12s %12s\n", "bits", "measured", "Lloyd-Max", "ratio", "paper lo", "paper hi");
    for (auto& r : rows)
      std::printf("%5d %12.5g %12.5g %8.4f %12.5g %12.5g\n", r["bits"].get<int>(), r["measured_mse"].get<double>(),
                  r["theory_mse"].get<double>(), r["ratio"].get<double>(), r["paper_lower_bound"].get<double>(),
                  r["paper_upper_bound"].get<double>());
  } else {
    std::printf("TurboQuant-prod inner products <y, x̂> vs <y, x>, d=%d, %d pairs\n", d, o.n);
    std::printf("%5s %12s %12s %12s %12s\n", "bits", "rel. bias", "variance", "pi/(2d)D", "paper bound");
    for (auto& r : rows)
      std::printf("%5d %12.3g %12.5g %12.5g %12.5g\n", r["bits"].get<int>(), r["ip_rel_bias"].get<double>(),
                  r["ip_variance"].get<double>(), r["ip_variance_theory"].get<double>(), r["ip_variance_bound"].get<double>());
  }
  return 0;
}

tq::cli::Registrar reg("distortion", "Measured vs theoretical TurboQuant distortion on random unit vectors",
                       [](CLI::App& app) -> tq::cli::Runner {
  auto o = std::make_shared<Opts>();
  app.add_option("--dim", o->dim, "Vector dimension d")->required();
  app.add_option("--bits", o->bits, "Bit widths, comma separated")->delimiter(',');
  app.add_option("--mode", o->mode, "mse or prod")->check(CLI::IsMember({"mse", "prod"}));
  app.add_option("--rotation", o->rot, "auto, hadamard or dense")->check(CLI::IsMember({"auto", "hadamard", "dense"}));
  app.add_option("--n", o->n, "Number of random vectors");
  app.add_option("--seed", o->seed, "Random seed");
  app.add_flag("--json", o->json, "Print JSON");
  return [o] { return run(*o); };
});

}  // namespace
