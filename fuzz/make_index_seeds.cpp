// Writes the seed corpus of fuzz_index_load: small valid FlatIndex files covering every branch of
// the format (Hadamard and dense rotations, 1-8 bits incl. the byte layout, fractional codecs with
// outlier channels, norm correction with stored ||x||^2, re-rank vectors, fp32 norms, an empty
// fractional index without a codec). Usage: make_index_seeds OUT_DIR
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "turboquant/index.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_index_seeds OUT_DIR\n");
    return 2;
  }
  const std::string out = argv[1];
  struct Seed {
    const char* file;
    int d;
    const char* desc;
    tq::Metric metric;
    size_t n;
  };
  const Seed seeds[] = {
      {"tq4_d8_ip", 8, "TQ4", tq::Metric::kInnerProduct, 5},
      {"tq2nc_d7_l2", 7, "TQ2,nc", tq::Metric::kL2, 3},
      {"tq3_rerank_d16", 16, "TQ3,rerank4", tq::Metric::kInnerProduct, 6},
      {"tq2.5_d12_l2", 12, "TQ2.5", tq::Metric::kL2, 4},
      {"tq1nc_fp32_d5", 5, "TQ1:norm=fp32,nc", tq::Metric::kInnerProduct, 2},
      {"tq8_d6", 6, "TQ8", tq::Metric::kL2, 3},
      {"tq3.5_empty_d8", 8, "TQ3.5", tq::Metric::kInnerProduct, 0},
  };
  for (const Seed& s : seeds) {
    tq::FlatIndex idx(s.d, s.desc, s.metric);
    std::vector<float> x(s.n * size_t(s.d));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.3f * float(i)) * (1.f + float(i % 3));
    if (s.n > 0) idx.add(x.data(), s.n, s.d);
    idx.save(out + "/" + s.file);
    std::printf("%s/%s: %s d=%d n=%zu\n", out.c_str(), s.file, idx.spec().name().c_str(), s.d, s.n);
  }
  return 0;
}
