// CPU micro-benchmarks of the codec core: encode / decode throughput per codec and dimension.
// Run: build/cpu/bench/bench_codec --benchmark_filter=Encode
#include <benchmark/benchmark.h>

#include "turboquant/codec.h"
#include "turboquant/rotation.h"

namespace {

const char* kCodecs[] = {"fp16", "tq2", "tq3", "tq4", "tq2.5", "tq3p"};

std::vector<float> data(int n, int d) {
  tq::Rng r(1);
  std::vector<float> x(size_t(n) * d);
  for (auto& v : x) v = float(r.normal());
  return x;
}

void BM_Encode(benchmark::State& st) {
  const int d = int(st.range(1)), n = 1024;
  auto c = tq::Codec::create(tq::parse_codec(kCodecs[st.range(0)]), d);
  const auto x = data(n, d);
  std::vector<uint8_t> codes(c->code_size() * n);
  for (auto _ : st) {
    c->encode(x.data(), n, d, codes.data());
    benchmark::DoNotOptimize(codes.data());
  }
  st.SetLabel(kCodecs[st.range(0)]);
  st.SetItemsProcessed(int64_t(st.iterations()) * n);
  st.SetBytesProcessed(int64_t(st.iterations()) * n * d * 4);
}

void BM_Decode(benchmark::State& st) {
  const int d = int(st.range(1)), n = 1024;
  auto c = tq::Codec::create(tq::parse_codec(kCodecs[st.range(0)]), d);
  const auto x = data(n, d);
  std::vector<uint8_t> codes(c->code_size() * n);
  c->encode(x.data(), n, d, codes.data());
  std::vector<float> y(x.size());
  for (auto _ : st) {
    c->decode(codes.data(), n, y.data(), d);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetLabel(kCodecs[st.range(0)]);
  st.SetItemsProcessed(int64_t(st.iterations()) * n);
  st.SetBytesProcessed(int64_t(st.iterations()) * n * d * 4);
}

BENCHMARK(BM_Encode)->ArgsProduct({{0, 1, 2, 3, 4, 5}, {128}})->ArgsProduct({{2}, {64, 100, 256}});
BENCHMARK(BM_Decode)->ArgsProduct({{0, 1, 2, 3, 4, 5}, {128}});

}  // namespace

BENCHMARK_MAIN();
