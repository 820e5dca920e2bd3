// tools/tq/cmd_eval.cpp — `tq eval`: every codec on the same data, side by side.
//   tq eval --q Q.npy --k K.npy --v V.npy [--codecs LIST] [--json] [--csv F] [--plot F.svg]
//   tq eval --qkv F.safetensors ...            (tensors q, k, v)
//   tq eval --vectors X.npy [--queries Q.npy] ... | tq eval --random N --dim D ...
// Metric definitions: include/turboquant/eval.h. Results: docs/QUALITY.md.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "command.h"
#include "turboquant/error.h"
#include "turboquant/eval.h"
#include "turboquant/npy.h"
#include "turboquant/rotation.h"
#include "turboquant/safetensors.h"

namespace {

constexpr const char* kDefaultKvCodecs = "fp16,fp8,q8,q8r,q4,q4r,kivi2,tq4,tq3.5,tq3,tq2.5,tq2,tq4p,tq3p";
constexpr const char* kDefaultVecCodecs = "fp16,fp8,q8,q8r,q4,q4r,kivi2,tq1,tq2,tq3,tq4,tq2.5,tq3.5,tq2p,tq3p,tq4p";

struct Opts {
  std::string q, k, v, qkv, vectors, queries, codecs, csv, plot, plot_metric, plot_x = "bits_per_value", title;
  long long random_n = 0, limit = 0;
  int dim = 0;
  bool normalize = false, json = false, no_progress = false;
  int kivi_group = 32, kivi_window = 32, center_k = 0, center_v = 0;
  uint64_t seed = 1;
};

// A float tensor from .npy, or tensor `name` of a .safetensors file.
tq::NpyArray load_tensor(const std::string& path, const std::string& name, const char* arg) {
  tq::NpyArray a;
  if (tq::is_safetensors_path(path)) {
    const auto st = tq::safetensors_load(path);
    if (name.empty()) {
      TQ_CHECK_ARG(st.tensors.size() == 1 || st.tensors.count("x"),
                   "{} {}: expected one tensor or a tensor named 'x', found {}", arg, path, st.tensors.size());
      a = st.tensors.size() == 1 ? st.tensors.begin()->second : st.at("x");
    } else {
      a = st.at(name);
    }
  } else {
    a = tq::npy_load(path);
  }
  const bool is_float = a.dtype == tq::DType::kF32 || a.dtype == tq::DType::kF16 || a.dtype == tq::DType::kBF16 ||
                        a.dtype == tq::DType::kF64;
  TQ_CHECK_ARG(is_float, "{} {}: expected a float tensor (float32/16, bfloat16, float64), got {}", arg, path,
               tq::dtype_name(a.dtype));
  return a;
}

void check_finite(const std::vector<float>& x, const char* what) {
  for (size_t i = 0; i < x.size(); ++i)
    TQ_CHECK_ARG(std::isfinite(x[i]), "{}: non-finite value at flat index {}", what, i);
}

// Progress bar on stderr (only on a terminal, so logs and pipes stay clean).
struct ProgressBar {
  bool on;
  std::chrono::steady_clock::time_point last{};
  explicit ProgressBar(bool enabled) : on(enabled && isatty(2)) {}
  void show(size_t done, size_t total, const std::string& what) {
    if (!on) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last < std::chrono::milliseconds(100)) return;
    last = now;
    const int w = 30, fill = int(double(done) / double(std::max<size_t>(total, 1)) * w);
    std::fprintf(stderr, "\r[%s%s] %3d%% %-28s", std::string(size_t(fill), '#').c_str(),
                 std::string(size_t(w - fill), '.').c_str(), int(100.0 * double(done) / double(std::max<size_t>(total, 1))),
                 what.c_str());
    std::fflush(stderr);
  }
  void done() {
    if (on) std::fprintf(stderr, "\r%72s\r", "");
  }
};

void write_csv(const std::string& path, const nlohmann::ordered_json& rows) {
  std::ofstream f(path);
  TQ_CHECK(f.good(), kIoError, "cannot write '{}'", path);
  bool first = true;
  for (auto it = rows[0].begin(); it != rows[0].end(); ++it) { f << (first ? "" : ",") << it.key(); first = false; }
  f << "\n";
  for (const auto& r : rows) {
    first = true;
    for (auto it = r.begin(); it != r.end(); ++it) {
      f << (first ? "" : ",");
      first = false;
      if (it->is_string()) f << '"' << it->get<std::string>() << '"';
      else if (!it->is_null()) f << it->dump();
    }
    f << "\n";
  }
  TQ_CHECK(f.good(), kIoError, "write to '{}' failed", path);
}

void write_plot(const Opts& o, const nlohmann::ordered_json& rows, const std::string& metric, const std::string& title) {
  std::vector<tq::eval::PlotPoint> pts;
  TQ_CHECK_ARG(rows[0].contains(metric), "--plot-metric '{}' is not a result column", metric);
  TQ_CHECK_ARG(rows[0].contains(o.plot_x) && rows[0][o.plot_x].is_number(), "--plot-x '{}' is not a numeric result column",
               o.plot_x);
  // Short labels when one side is the same codec on every row (key-only / value-only sweeps).
  bool same_k = rows[0].contains("k_codec"), same_v = same_k;
  for (const auto& r : rows) {
    if (!same_k) break;
    same_k = same_k && r["k_codec"] == rows[0]["k_codec"];
    same_v = same_v && r["v_codec"] == rows[0]["v_codec"];
  }
  const char* label_key = rows.size() > 1 && same_v && !same_k ? "k_codec" : rows.size() > 1 && same_k && !same_v ? "v_codec" : "codec";
  for (const auto& r : rows) {
    const auto& y = r[metric];
    pts.push_back({r[label_key].get<std::string>(), r[o.plot_x].get<double>(), y.is_number() ? y.get<double>() : NAN});
  }
  std::ofstream f(o.plot);
  TQ_CHECK(f.good(), kIoError, "cannot write '{}'", o.plot);
  const std::string xlabel = o.plot_x == "bits_per_value" ? "bits per value (all overhead counted)"
                             : o.plot_x == "k_bits"       ? "key bits per value (all overhead counted)"
                             : o.plot_x == "v_bits"       ? "value bits per value (all overhead counted)"
                                                          : o.plot_x;
  f << tq::eval::pareto_svg(pts, o.title.empty() ? title : o.title, xlabel, metric);
  TQ_CHECK(f.good(), kIoError, "write to '{}' failed", o.plot);
}

void emit(const Opts& o, const nlohmann::ordered_json& data, const nlohmann::ordered_json& rows,
          const std::vector<std::pair<std::string, std::string>>& table_cols, const std::string& default_metric,
          const std::string& title) {
  if (o.json) {
    nlohmann::ordered_json j;
    j["data"] = data;
    j["results"] = rows;
    std::printf("%s\n", j.dump(1).c_str());
  } else {
    std::printf("%s\n", title.c_str());
    for (const auto& [key, head] : table_cols) std::printf(key == "codec" ? "%-16s" : " %11s", head.c_str());
    std::printf("\n");
    for (const auto& r : rows) {
      for (const auto& [key, head] : table_cols) {
        const auto& v = r[key];
        if (key == "codec") std::printf("%-16s", v.get<std::string>().c_str());
        else if (v.is_null()) std::printf(" %11s", "-");
        else if (key == "bits_per_value" || key == "top1_agree" || key == "top8_agree" || key == "vs_optimum")
          std::printf(" %11.4f", v.get<double>());
        else std::printf(" %11.4g", v.get<double>());
      }
      std::printf("\n");
    }
  }
  if (!o.csv.empty()) write_csv(o.csv, rows);
  if (!o.plot.empty()) write_plot(o, rows, o.plot_metric.empty() ? default_metric : o.plot_metric, title);
}

int run_attention(const Opts& o) {
  const std::string qp = o.qkv.empty() ? o.q : o.qkv, kp = o.qkv.empty() ? o.k : o.qkv, vp = o.qkv.empty() ? o.v : o.qkv;
  TQ_CHECK_ARG(!qp.empty() && !kp.empty() && !vp.empty(), "attention mode needs --q, --k and --v (or --qkv)");
  const auto qa = load_tensor(qp, "q", "--q"), ka = load_tensor(kp, "k", "--k"), va = load_tensor(vp, "v", "--v");
  const tq::eval::AttnShape s = tq::eval::attn_shape(qa.shape, ka.shape, va.shape);
  const auto q = qa.to_f32(), k = ka.to_f32(), v = va.to_f32();
  check_finite(q, "Q");
  check_finite(k, "K");
  check_finite(v, "V");
  const auto choices = tq::eval::parse_codec_list(o.codecs.empty() ? kDefaultKvCodecs : o.codecs);
  tq::eval::AttnOptions ko;
  ko.group = o.kivi_group;
  ko.window = o.kivi_window;
  ko.center_k = o.center_k;
  ko.center_v = o.center_v;
  ProgressBar bar(!o.no_progress);
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  const size_t units = size_t(s.B) * s.Hkv;
  for (size_t ci = 0; ci < choices.size(); ++ci) {
    const auto r = tq::eval::eval_attention(q.data(), k.data(), v.data(), s, choices[ci], ko, o.seed,
                                            [&](size_t d, size_t) { bar.show(ci * units + d, choices.size() * units, choices[ci].label); });
    rows.push_back(tq::eval::to_json(r));
  }
  bar.done();
  nlohmann::ordered_json data = {{"mode", "attention"}, {"q", qp}, {"k", kp}, {"v", vp}, {"B", s.B}, {"Hq", s.Hq},
                                 {"Hkv", s.Hkv}, {"Tq", s.Tq}, {"T", s.T}, {"D", s.D}, {"kivi_group", ko.group},
                                 {"kivi_window", ko.window}, {"center_k", ko.center_k}, {"center_v", ko.center_v},
                                 {"seed", o.seed}};
  const std::string title = fmt::format("attention B={} Hq={} Hkv={} Tq={} T={} D={}", s.B, s.Hq, s.Hkv, s.Tq, s.T, s.D);
  emit(o, data, rows,
       {{"codec", "codec"}, {"bits_per_value", "bits/value"}, {"kld", "KLD"}, {"attn_rel_l2", "attn relL2"},
        {"top1_agree", "top1"}, {"top8_agree", "top8"}, {"score_rel_err", "score err"}, {"k_rel_mse", "K relMSE"},
        {"v_rel_mse", "V relMSE"}},
       "kld", title);
  return 0;
}

int run_vectors(const Opts& o) {
  std::vector<float> x;
  size_t n = 0;
  int d = 0;
  std::string source;
  if (o.random_n > 0) {
    TQ_CHECK_ARG(o.dim >= 1, "--random needs --dim D (>= 1)");
    n = size_t(o.random_n);
    d = o.dim;
    x.resize(n * size_t(d));
    tq::Rng r(o.seed ^ 0xDA7Au);
    for (auto& e : x) e = float(r.normal());
    for (size_t i = 0; i < n; ++i) {  // uniform on the unit sphere
      double s = 0;
      for (int j = 0; j < d; ++j) s += double(x[i * d + j]) * x[i * d + j];
      for (int j = 0; j < d; ++j) x[i * d + j] = float(x[i * d + j] / std::sqrt(s));
    }
    source = fmt::format("random unit vectors n={} d={} seed={}", n, d, o.seed);
  } else {
    const auto a = load_tensor(o.vectors, "", "--vectors");
    TQ_CHECK_ARG(a.shape.size() == 2, "--vectors {}: expected a 2-D array [n, d], got {} dimensions", o.vectors, a.shape.size());
    TQ_CHECK_ARG(a.shape[0] >= 1 && a.shape[1] >= 1, "--vectors {}: empty array", o.vectors);
    x = a.to_f32();
    n = size_t(a.shape[0]);
    d = int(a.shape[1]);
    if (o.limit > 0 && size_t(o.limit) < n) {
      n = size_t(o.limit);
      x.resize(n * size_t(d));
    }
    check_finite(x, "--vectors");
    source = o.vectors;
  }
  if (o.normalize) {
    for (size_t i = 0; i < n; ++i) {
      double s = 0;
      for (int j = 0; j < d; ++j) s += double(x[i * d + j]) * x[i * d + j];
      if (s > 0)
        for (int j = 0; j < d; ++j) x[i * d + j] = float(x[i * d + j] / std::sqrt(s));
    }
  }
  std::vector<float> qs;
  size_t nq = 0;
  if (!o.queries.empty()) {
    const auto a = load_tensor(o.queries, "", "--queries");
    TQ_CHECK_ARG(a.shape.size() == 2 && a.shape[1] == d, "--queries {}: expected [n, {}]", o.queries, d);
    qs = a.to_f32();
    nq = size_t(a.shape[0]);
    check_finite(qs, "--queries");
  }
  const auto choices = tq::eval::parse_codec_list(o.codecs.empty() ? kDefaultVecCodecs : o.codecs);
  ProgressBar bar(!o.no_progress);
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (size_t ci = 0; ci < choices.size(); ++ci) {
    TQ_CHECK_ARG(choices[ci].k.name() == choices[ci].v.name(),
                 "--codecs: '{}' has separate key/value codecs, which only attention mode uses", choices[ci].label);
    bar.show(ci, choices.size(), choices[ci].label);
    rows.push_back(tq::eval::to_json(
        tq::eval::eval_vectors(x.data(), n, d, choices[ci].k, qs.empty() ? nullptr : qs.data(), nq, o.seed)));
  }
  bar.done();
  nlohmann::ordered_json data = {{"mode", "vectors"}, {"source", source}, {"n", n}, {"dim", d},
                                 {"normalized", o.normalize}, {"queries", o.queries.empty() ? "sample of the vectors" : o.queries},
                                 {"seed", o.seed}};
  emit(o, data, rows,
       {{"codec", "codec"}, {"bits_per_value", "bits/value"}, {"rel_mse", "rel MSE"}, {"beta_optimum", "Beta opt"},
        {"vs_optimum", "/opt"}, {"ip_rel_err_random", "IP err rnd"}, {"ip_rel_err_real", "IP err real"},
        {"ip_bias_real", "IP bias"}},
       "rel_mse", fmt::format("vectors: {} ({} x {})", source, n, d));
  return 0;
}

int run(const Opts& o) {
  const int modes = (o.random_n > 0) + !o.vectors.empty() + (!o.q.empty() || !o.k.empty() || !o.v.empty() || !o.qkv.empty());
  TQ_CHECK_ARG(modes == 1, "choose one input: --q/--k/--v (or --qkv), --vectors, or --random N --dim D");
  TQ_CHECK_ARG(o.qkv.empty() || (o.q.empty() && o.k.empty() && o.v.empty()), "--qkv replaces --q/--k/--v");
  if (!o.vectors.empty() || o.random_n > 0) return run_vectors(o);
  return run_attention(o);
}

tq::cli::Registrar reg("eval", "Compare codecs on KV tensors (attention error, KLD, top-k) or vector sets",
                       [](CLI::App& app) -> tq::cli::Runner {
  auto o = std::make_shared<Opts>();
  app.add_option("--q", o->q, "Queries [B,Hq,D] or [B,Hq,Tq,D] (.npy, or .safetensors tensor 'q')");
  app.add_option("--k", o->k, "Keys [B,Hkv,T,D] (.npy, or .safetensors tensor 'k')");
  app.add_option("--v", o->v, "Values [B,Hkv,T,D] (.npy, or .safetensors tensor 'v')");
  app.add_option("--qkv", o->qkv, "One .safetensors file holding tensors q, k and v");
  app.add_option("--vectors", o->vectors, "Vector set [n,d] (.npy, or .safetensors with one tensor or 'x')");
  app.add_option("--queries", o->queries, "Vector mode: real query directions [m,d] (default: a sample of the vectors)");
  app.add_option("--random", o->random_n, "Vector mode: N random unit vectors (with --dim)");
  app.add_option("--dim", o->dim, "Dimension of --random vectors");
  app.add_option("--limit", o->limit, "Vector mode: use the first N vectors only");
  app.add_flag("--normalize", o->normalize, "Vector mode: scale every vector to unit norm first");
  app.add_option("--codecs", o->codecs,
                 "Comma-separated codecs; k=A,v=B (or kXvY) sets key and value codecs apart. Default (attention): "
                 + std::string(kDefaultKvCodecs));
  app.add_option("--kivi-group", o->kivi_group, "KIVI: tokens per per-channel key group G (default 32)");
  app.add_option("--kivi-window", o->kivi_window, "KIVI: recent tokens kept in fp16 R (default 32)");
  app.add_option("--center-keys", o->center_k,
                 "Subtract the mean of the first N tokens from keys before encoding (exact for softmax; 0 = off)");
  app.add_option("--center-values", o->center_v, "Same for values (exact since attention weights sum to 1)");
  app.add_option("--seed", o->seed, "Seed of random directions / random data (codec seeds are in the codec strings)");
  app.add_flag("--json", o->json, "Print JSON {data, results: [...]} instead of a table");
  app.add_option("--csv", o->csv, "Also write the results as CSV");
  app.add_option("--plot", o->plot, "Also write a Pareto plot (error vs bits per value) as SVG");
  app.add_option("--plot-metric", o->plot_metric, "Plotted error column (default: kld, or rel_mse for vectors)");
  app.add_option("--plot-x", o->plot_x, "Plot x column: bits_per_value (default), k_bits or v_bits");
  app.add_option("--title", o->title, "Plot title");
  app.add_flag("--no-progress", o->no_progress, "No progress bar on stderr");
  return [o] { return run(*o); };
});

}  // namespace
