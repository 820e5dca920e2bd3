// bench/ann/ann_compare.cpp — TurboQuant FlatIndex and faiss indexes on the same base/query set, in
// one process, with the same thread count: build time (faiss: train + add), queries per second at
// k, recall@1@k for k = 1..64 against one exact ground truth. One JSON object per index per line.
//
//   tq_ann_compare --base B.npy --queries Q.npy --metric ip --threads 2 --k 10
//                  --tq "TQ4;TQ2;TQ4,rerank32" --faiss "PQ50;SQ4;SQ8;PQ100x4fs;Flat" [--train-max N]
//
// faiss descriptions go to faiss::index_factory. PQ and SQ are trained on the first --train-max
// base vectors (default: all). Timings are the best of --repeat runs.
#include <omp.h>

#include <time.h>

#include <cstdio>
#include <memory>
#include <sstream>

#include <faiss/Index.h>
#include <faiss/IndexFastScan.h>
#include <faiss/index_factory.h>
#include <nlohmann/json.hpp>

#include "ann_eval.h"
#include "index/fast_scan.h"

namespace {

double cpu_seconds() {  // this process, all threads
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string t;
  while (std::getline(ss, t, ';'))
    if (!t.empty()) out.push_back(t);
  return out;
}

struct Args {
  std::string base, queries, metric = "ip", tq = "TQ4", faiss = "PQ50;SQ4;SQ8;Flat";
  int threads = 1, k = 10, repeat = 3;
  size_t train_max = 0;
  bool normalize = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto val = [&]() -> std::string {
      TQ_CHECK_ARG(i + 1 < argc, "{} needs a value", f);
      return argv[++i];
    };
    if (f == "--base") a.base = val();
    else if (f == "--queries") a.queries = val();
    else if (f == "--metric") a.metric = val();
    else if (f == "--tq") a.tq = val();
    else if (f == "--faiss") a.faiss = val();
    else if (f == "--threads") a.threads = std::stoi(val());
    else if (f == "--k") a.k = std::stoi(val());
    else if (f == "--repeat") a.repeat = std::stoi(val());
    else if (f == "--train-max") a.train_max = std::stoul(val());
    else if (f == "--normalize") a.normalize = true;
    else TQ_FAIL(kInvalidArgument, "unknown flag {}", f);
  }
  TQ_CHECK_ARG(!a.base.empty() && !a.queries.empty(), "--base and --queries are required");
  return a;
}

struct Result {
  double build_s = 1e30, train_s = 0, search_s = 1e30;
  double build_cpu_s = 0;  // process CPU time (all threads) of the fastest build: on a shared
                           // machine, CPU time / threads is what the build costs when uncontended
  size_t bytes = 0;
  double memory_per_vector = 0;  // everything the index holds per vector (turboquant: + labels, fp32 copies)
  std::vector<int64_t> ids, ids_curve;
};

}  // namespace

int main(int argc, char** argv) try {
  using namespace tq::ann;
  const Args a = parse(argc, argv);
  const tq::Metric metric = tq::parse_metric(a.metric);
  omp_set_num_threads(a.threads);
  const Matrix base = load_matrix(a.base, a.normalize), q = load_matrix(a.queries, a.normalize);
  TQ_CHECK_ARG(base.d == q.d, "dimensions differ: {} vs {}", base.d, q.d);
  const int kc = int(std::min<size_t>(64, base.n));
  const int kk = std::min(a.k, kc);
  auto t0 = std::chrono::steady_clock::now();
  const auto gt = ground_truth(base, q, kk, metric, a.threads);
  std::fprintf(stderr, "ground truth: %.2f s\n", seconds_since(t0));

  auto report = [&](const char* lib, const std::string& name, const Result& r) {
    nlohmann::json j = {{"lib", lib}, {"index", name}, {"metric", a.metric}, {"n_base", base.n},
                        {"n_queries", q.n}, {"dim", base.d}, {"k", kk}, {"threads", a.threads},
                        {"bytes_per_vector", r.bytes}, {"memory_bytes_per_vector", r.memory_per_vector},
                        {"build_s", r.build_s}, {"build_cpu_s", r.build_cpu_s}, {"train_s", r.train_s},
                        {"search_s", r.search_s}, {"qps", double(q.n) / r.search_s},
                        {"recall_at_k", knn_recall(r.ids, kk, gt, kk, q.n, kk)},
                        {"recall_at_1_at_k", recall_1_at_k(r.ids_curve, kc, gt, kk, q.n)}};
    if (std::string(lib) == "turboquant") j["simd"] = tq::index::scan_target_name();
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "%-10s %-22s %5zu B  build %8.4f s  %8.1f QPS  R@1@1 %.4f  R@1@10 %.4f\n", lib, name.c_str(),
                 r.bytes, r.build_s, double(q.n) / r.search_s, j["recall_at_1_at_k"][0].get<double>(),
                 j["recall_at_1_at_k"][std::min(9, kc - 1)].get<double>());
  };

  for (const std::string& desc : split(a.tq)) {
    Result r;
    std::unique_ptr<tq::FlatIndex> idx;
    for (int rep = 0; rep < a.repeat; ++rep) {
      auto fresh = std::make_unique<tq::FlatIndex>(base.d, desc, metric);
      t0 = std::chrono::steady_clock::now();
      const double c0 = cpu_seconds();
      fresh->add(base.x.data(), base.n, base.d, nullptr, a.threads);
      const double wall = seconds_since(t0), cpu = cpu_seconds() - c0;
      if (wall < r.build_s) {
        r.build_s = wall;
        r.build_cpu_s = cpu;
      }
      idx = std::move(fresh);
    }
    r.bytes = idx->code_size();
    r.memory_per_vector = double(idx->memory_bytes()) / double(base.n);
    tq::SearchParams sp;
    sp.threads = a.threads;
    std::vector<float> D(q.n * kc);
    r.ids.resize(q.n * kk);
    r.ids_curve.resize(q.n * kc);
    for (int rep = 0; rep < a.repeat; ++rep) {
      t0 = std::chrono::steady_clock::now();
      idx->search(q.x.data(), q.n, q.d, kk, D.data(), r.ids.data(), sp);
      r.search_s = std::min(r.search_s, seconds_since(t0));
    }
    idx->search(q.x.data(), q.n, q.d, kc, D.data(), r.ids_curve.data(), sp);
    report("turboquant", idx->spec().name(), r);
  }

  const faiss::MetricType fm = metric == tq::Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
  const size_t n_train = a.train_max > 0 ? std::min(a.train_max, base.n) : base.n;
  for (const std::string& desc : split(a.faiss)) {
    Result r;
    std::unique_ptr<faiss::Index> idx;
    for (int rep = 0; rep < (desc.rfind("PQ", 0) == 0 ? 1 : a.repeat); ++rep) {  // PQ training is slow: once
      std::unique_ptr<faiss::Index> fresh(faiss::index_factory(base.d, desc.c_str(), fm));
      t0 = std::chrono::steady_clock::now();
      const double c0 = cpu_seconds();
      fresh->train(faiss::Index::idx_t(n_train), base.x.data());
      const double tr = seconds_since(t0);
      fresh->add(faiss::Index::idx_t(base.n), base.x.data());
      const double total = seconds_since(t0);
      if (total < r.build_s) {
        r.build_s = total;
        r.build_cpu_s = cpu_seconds() - c0;
        r.train_s = tr;
      }
      idx = std::move(fresh);
    }
    try {
      r.bytes = idx->sa_code_size();
    } catch (const std::exception&) {  // fast-scan indexes have no standalone codec in faiss 1.7.3
      const auto* fs = dynamic_cast<const faiss::IndexFastScan*>(idx.get());
      r.bytes = fs ? fs->code_size : 0;
    }
    r.memory_per_vector = double(r.bytes);
    std::vector<float> D(q.n * kc);
    std::vector<faiss::Index::idx_t> L(q.n * kc);
    r.ids.resize(q.n * kk);
    r.ids_curve.resize(q.n * kc);
    for (int rep = 0; rep < a.repeat; ++rep) {
      t0 = std::chrono::steady_clock::now();
      idx->search(faiss::Index::idx_t(q.n), q.x.data(), kk, D.data(), L.data());
      r.search_s = std::min(r.search_s, seconds_since(t0));
    }
    for (size_t i = 0; i < q.n * kk; ++i) r.ids[i] = L[i];
    idx->search(faiss::Index::idx_t(q.n), q.x.data(), kc, D.data(), L.data());
    for (size_t i = 0; i < q.n * kc; ++i) r.ids_curve[i] = L[i];
    report("faiss", desc, r);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "tq_ann_compare: %s\n", e.what());
  return 1;
}
