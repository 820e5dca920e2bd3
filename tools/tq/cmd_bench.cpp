// tools/tq/cmd_bench.cpp — `tq bench decode`: one decode step of attention over a filled KV cache,
// every listed codec through the same engine in one run, on random data.
//
// Per codec and context: fill the cache (timed: append throughput, quantization included), warm
// up, then time `--reps` decode steps and report the median. By default each step starts with a
// cold last-level cache (a 2x-L3 buffer is streamed between steps, untimed), as in a real forward
// pass where 32+ layers' KV do not stay cached; --warm keeps the KV cache-resident instead.
// Accuracy in the same run: the output vs float64 attention on the unquantized inputs (what the
// codec costs) and vs the reference on the same codes (what the fast kernels cost).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <nlohmann/json.hpp>

#include "command.h"
#include "turboquant/attention.h"
#include "turboquant/error.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Opts {
  std::string device = "cpu", codecs = "fp32,fp16,tq4,tq3", contexts = "4096";
  int batch = 1, hq = 32, hkv = 8, d = 128, threads = 0, reps = 20, warmup = 3, page_tokens = 16;
  bool json = false, warm = false, no_check = false, fp32_scores = false;
  uint64_t seed = 1;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// K or V rows of tokens [t0, t0+n) of sequence b: [n][Hkv][D], regenerated identically on demand
// so that the float64 check does not need the whole context in memory twice.
std::vector<float> kv_rows(const Opts& o, int b, int t0, int n, bool v) {
  std::vector<float> x(size_t(n) * o.hkv * o.d);
  std::mt19937_64 g(o.seed * 1000003u + uint64_t(b) * 7919u + uint64_t(t0) * 2u + (v ? 1u : 0u));
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : x) e = nd(g);
  return x;
}

constexpr int kChunk = 512;  // tokens per append call (prefill-like)

// Streams a buffer of twice the last-level cache so the next step reads the KV from DRAM.
void flush_caches() {
  static std::vector<float> junk(size_t(64) << 20 >> 2, 1.0f);
  static volatile float sink = 0;
  float s = 0;
  for (size_t i = 0; i < junk.size(); i += 16) s += junk[i];
  sink = sink + s;
}

// Read bandwidth of this machine with the threads the benchmark uses (for the floor).
double read_bandwidth_gbps(int threads) {
  const size_t n = size_t(256) << 20 >> 2;  // 8x the L3
  std::vector<float> a(n, 1.0f);
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    double total = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : total) schedule(static)
    for (int64_t c = 0; c < int64_t(n / 4096); ++c) {
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      const float* p = &a[size_t(c) * 4096];
      for (int i = 0; i < 4096; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
      }
      total += s0 + s1 + s2 + s3;
    }
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    if (total < 0) std::printf(" ");
  }
  return double(n) * 4 / best / 1e9;
}

nlohmann::ordered_json bench_one(const Opts& o, const std::string& codec, int T, int threads) {
  tq::KvCacheConfig cfg;
  cfg.n_kv_heads = o.hkv;
  cfg.head_dim = o.d;
  cfg.codec = codec;
  cfg.page_tokens = o.page_tokens;
  cfg.num_pages = o.batch * ((T + o.page_tokens - 1) / o.page_tokens);
  tq::KvCache cache(cfg);
  std::vector<int> seqs;
  double append_s = 0;
  for (int b = 0; b < o.batch; ++b) {
    seqs.push_back(cache.add_sequence());
    for (int t0 = 0; t0 < T; t0 += kChunk) {
      const int n = std::min(kChunk, T - t0);
      const auto k = kv_rows(o, b, t0, n, false), v = kv_rows(o, b, t0, n, true);
      const auto a0 = Clock::now();
      cache.append(0, seqs.back(), n, {k.data()}, {v.data()});
      append_s += std::chrono::duration<double>(Clock::now() - a0).count();
    }
  }
  std::vector<float> q(size_t(o.batch) * o.hq * o.d), out(q.size()), ref(q.size());
  std::mt19937_64 g(o.seed * 31 + 5);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : q) e = nd(g);
  tq::AttendQuery a;
  a.seqs = seqs.data();
  a.batch = o.batch;
  a.heads_q = o.hq;
  a.q = q.data();
  a.out = out.data();
  tq::AttentionOptions opt;
  opt.threads = threads;
  opt.int8_scores = opt.bf16_values = !o.fp32_scores;
  for (int i = 0; i < o.warmup; ++i) tq::attend(cache, 0, a, opt);
  std::vector<double> us;
  for (int i = 0; i < o.reps; ++i) {
    if (!o.warm) flush_caches();
    const auto t0 = Clock::now();
    tq::attend(cache, 0, a, opt);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  const double med = us[us.size() / 2];
  const size_t bpt = cache.bytes_per_token(0);
  const double bytes = double(bpt) * T * o.batch;

  nlohmann::ordered_json r;
  r["codec"] = codec;
  r["k_codec"] = cache.k_codec(0).spec().name();
  r["v_codec"] = cache.v_codec(0).spec().name();
  r["batch"] = o.batch;
  r["heads_q"] = o.hq;
  r["heads_kv"] = o.hkv;
  r["head_dim"] = o.d;
  r["context"] = T;
  r["us"] = med;
  r["us_min"] = us.front();  // the least disturbed step (shared machines: the median carries the load)
  r["us_min"] = us.front();
  r["us_p90"] = us[std::min(us.size() - 1, us.size() * 9 / 10)];
  r["bytes_per_token"] = bpt;
  r["kv_bytes_per_step"] = bytes;
  r["gbps"] = bytes / (med * 1e-6) / 1e9;
  r["append_tokens_per_s"] = double(T) * o.batch / append_s;
  r["paths"] = tq::attention_paths(cache, 0).k + "/" + tq::attention_paths(cache, 0).v;
  if (!o.no_check) {
    // Float64 attention on the unquantized inputs (the codec's error) and the reference on the
    // same codes (the fast path's own error).
    double e_num = 0, e_den = 0;
    const int G = o.hq / o.hkv;
    for (int b = 0; b < o.batch; ++b) {
      for (int h = 0; h < o.hq; ++h) {
        std::vector<double> s(static_cast<size_t>(T)), acc(static_cast<size_t>(o.d), 0.0);
        const float* qh = &q[(size_t(b) * o.hq + h) * o.d];
        double mx = -1e300, den = 0;
        for (int t0 = 0; t0 < T; t0 += kChunk) {
          const int n = std::min(kChunk, T - t0);
          const auto k = kv_rows(o, b, t0, n, false);
          for (int t = 0; t < n; ++t) {
            double dot = 0;
            const float* kt = &k[(size_t(t) * o.hkv + size_t(h / G)) * o.d];
            for (int j = 0; j < o.d; ++j) dot += double(qh[j]) * kt[j];
            s[size_t(t0 + t)] = dot / std::sqrt(double(o.d));
            mx = std::max(mx, s[size_t(t0 + t)]);
          }
        }
        for (auto& x : s) den += (x = std::exp(x - mx));
        for (int t0 = 0; t0 < T; t0 += kChunk) {
          const int n = std::min(kChunk, T - t0);
          const auto v = kv_rows(o, b, t0, n, true);
          for (int t = 0; t < n; ++t) {
            const float* vt = &v[(size_t(t) * o.hkv + size_t(h / G)) * o.d];
            for (int j = 0; j < o.d; ++j) acc[size_t(j)] += s[size_t(t0 + t)] * vt[j];
          }
        }
        const float* oh = &out[(size_t(b) * o.hq + h) * o.d];
        for (int j = 0; j < o.d; ++j) {
          const double want = acc[size_t(j)] / den;
          e_num += (oh[j] - want) * (oh[j] - want);
          e_den += want * want;
        }
      }
    }
    r["err_vs_exact"] = std::sqrt(e_num / e_den);
    a.out = ref.data();
    tq::attend_reference(cache, 0, a);
    double n2 = 0, d2 = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      n2 += (double(out[i]) - ref[i]) * (double(out[i]) - ref[i]);
      d2 += double(ref[i]) * ref[i];
    }
    r["err_vs_reference"] = std::sqrt(n2 / d2);
  }
  return r;
}

int run(const Opts& o) {
  TQ_CHECK_ARG(o.device == "cpu", "bench decode: device '{}' is not built into this CLI (cpu only; CUDA: bench/cuda)",
               o.device);
  TQ_CHECK_ARG(o.batch >= 1 && o.hq >= 1 && o.hkv >= 1 && o.d >= 1 && o.hq % o.hkv == 0,
               "bench decode: need batch, heads and head-dim >= 1 and heads-q a multiple of heads-kv");
  TQ_CHECK_ARG(o.reps >= 1 && o.warmup >= 0 && o.threads >= 0, "bench decode: bad --reps / --warmup / --threads");
  int threads = o.threads;
#ifdef _OPENMP
  if (threads == 0) threads = omp_get_max_threads();
#else
  threads = 1;
#endif
  std::vector<int> contexts;
  for (const auto& c : split(o.contexts)) {
    int t = 0;
    try {
      t = std::stoi(c);
    } catch (...) {
      TQ_FAIL(kInvalidArgument, "bench decode: bad context '{}'", c);
    }
    TQ_CHECK_ARG(t >= 1, "bench decode: context must be >= 1, got {}", t);
    contexts.push_back(t);
  }
  const auto codecs = split(o.codecs);
  TQ_CHECK_ARG(!codecs.empty() && !contexts.empty(), "bench decode: empty --codecs or --context");
  for (const auto& c : codecs) (void)tq::parse_kv_codec(c);  // fail before any timing

  nlohmann::ordered_json doc;
  doc["device"] = "cpu";
  doc["threads"] = threads;
  doc["simd_target"] = tq::attention_simd_target();
  doc["cache"] = o.warm ? "warm" : "cold (2x L3 streamed between steps)";
  doc["scores"] = o.fp32_scores ? "fp32" : "int8 K scores, bf16 V sums for TurboQuant codes where the CPU has AVX-512 VNNI/BF16 + VBMI";
  doc["read_gbps"] = read_bandwidth_gbps(threads);
  doc["results"] = nlohmann::ordered_json::array();
  if (!o.json)
    std::printf("cpu, %d threads, SIMD %s, read bandwidth %.1f GB/s, %s cache\n%-14s %6s %7s %10s %10s %9s %8s %10s %10s %12s\n",
                threads, tq::attention_simd_target(), doc["read_gbps"].get<double>(), o.warm ? "warm" : "cold", "codec",
                "batch", "context", "us", "us_min", "B/token", "GB/s", "err_exact", "err_ref", "append tok/s");
  for (int T : contexts)
    for (const auto& c : codecs) {
      auto r = bench_one(o, c, T, threads);
      if (!o.json)
        std::printf("%-14s %6d %7d %10.1f %10.1f %9zu %8.2f %10.3g %10.3g %12.4g\n", c.c_str(), o.batch, T,
                    r["us"].get<double>(), r["us_min"].get<double>(), r["bytes_per_token"].get<size_t>(), r["gbps"].get<double>(),
                    o.no_check ? 0.0 : r["err_vs_exact"].get<double>(), o.no_check ? 0.0 : r["err_vs_reference"].get<double>(),
                    r["append_tokens_per_s"].get<double>());
      doc["results"].push_back(r);
    }
  if (o.json) std::printf("%s\n", doc.dump(1).c_str());
  return 0;
}

tq::cli::Registrar reg("bench", "Benchmarks (decode: attention over a filled KV cache)", [](CLI::App& app) -> tq::cli::Runner {
  auto o = std::make_shared<Opts>();
  app.require_subcommand(1);
  CLI::App* dec = app.add_subcommand("decode", "Time one decode step per codec (median over repetitions)");
  dec->add_option("--device", o->device, "cpu");
  dec->add_option("--batch", o->batch, "Sequences");
  dec->add_option("--heads-q", o->hq, "Query heads");
  dec->add_option("--heads-kv", o->hkv, "KV heads");
  dec->add_option("--head-dim", o->d, "Head dimension");
  dec->add_option("--context", o->contexts, "Context length(s), comma-separated");
  dec->add_option("--codecs", o->codecs, "KV codecs, comma-separated (fp32, fp16, tq3, k4v3, ...)");
  dec->add_option("--threads", o->threads, "Threads (0: all)");
  dec->add_option("--reps", o->reps, "Timed decode steps per codec");
  dec->add_option("--warmup", o->warmup, "Untimed decode steps first");
  dec->add_option("--page-tokens", o->page_tokens, "Tokens per KV page");
  dec->add_option("--seed", o->seed, "Random data seed");
  dec->add_flag("--warm", o->warm, "Keep the KV cache-resident between steps (default: cold)");
  dec->add_flag("--fp32-scores", o->fp32_scores, "fp32 TurboQuant kernels instead of int8 K scores / bf16 V sums (AVX-512 VNNI/BF16 CPUs)");
  dec->add_flag("--no-check", o->no_check, "Skip the accuracy checks");
  dec->add_flag("--json", o->json, "JSON output");
  return [o] { return run(*o); };
});

}  // namespace
