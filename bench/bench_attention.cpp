// CPU decode-attention micro-benchmarks (Google Benchmark): the code kernels alone (tokens/s of
// one KV head, 4 query rows as in GQA 32/8) and whole decode steps through the engine, fp32 / fp16
// peers in the same run. The end-to-end comparison with cold caches and accuracy is
// `tq bench decode` (docs/BENCHMARKS.md); this file is for kernel work.
// Run: build/cpu/bench/bench_attention --benchmark_filter=Codes
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kv/attn_alt_kernels.h"
#include "kv/attn_int8.h"
#include "kv/attn_kernels.h"
#include "turboquant/attention.h"
#include "turboquant/layout.h"

namespace {

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(n);
  for (auto& v : x) v = nd(g);
  return x;
}

// One KV head's codes as a page holds them: n tokens at a fixed stride.
struct CodeBlock {
  int bits, m, n;
  size_t stride;
  std::vector<uint8_t> codes;
  std::vector<float> table;
  CodeBlock(int b, int m_, int n_) : bits(b), m(m_), n(n_), stride(tq::packed_bytes(uint32_t(m_), uint32_t(b))) {
    std::mt19937_64 g(b);
    codes.resize(stride * size_t(n) + 64);
    for (auto& c : codes) c = uint8_t(g());
    table = randn(size_t(1) << b, 3);
  }
};

constexpr int kTokens = 4096, kRows = 4, kBlock = 64;

// range(1): tokens streamed (4096: L2-resident; 262144: 13 MB at 3 bits, from L3/DRAM).
void BM_DotCodes(benchmark::State& st) {
  const int tokens = int(st.range(1));
  const CodeBlock cb(int(st.range(0)), 128, tokens);
  const auto q = randn(kRows * 128, 1);
  std::vector<float> s(size_t(kRows) * kBlock);
  for (auto _ : st) {
    for (int t = 0; t < tokens; t += kBlock)
      tq::kv::dot_codes(cb.bits, cb.m, tq::kv::OneSegment{cb.codes.data() + size_t(t) * cb.stride, kBlock, cb.stride}.run(), 0, cb.table.data(),
                        q.data(), 128, kRows, s.data(), kBlock);
    benchmark::DoNotOptimize(s.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * tokens);
  st.SetLabel(tq::kv::kernel_target());
}

// The int8 score kernel (attn_int8.h) on the same data.
void BM_DotCodesI8(benchmark::State& st) {
  const int tokens = int(st.range(1));
  const CodeBlock cb(int(st.range(0)), 128, tokens);
  if (!tq::kv::int8_scores_available()) {
    st.SkipWithError("no AVX-512 VNNI + VBMI on this CPU");
    return;
  }
  const auto q = randn(kRows * 128, 1);
  tq::kv::Int8Query q8;
  tq::kv::quantize_query(q.data(), 128, kRows, 128, q8);
  const tq::kv::Int8Table tab = tq::kv::make_int8_table(cb.bits, cb.table.data());
  std::vector<float> s(size_t(kRows) * kBlock);
  for (auto _ : st) {
    for (int t = 0; t < tokens; t += kBlock)
      tq::kv::dot_codes_i8(cb.bits, cb.m, tq::kv::OneSegment{cb.codes.data() + size_t(t) * cb.stride, kBlock, cb.stride}.run(), 0, tab,
                           q8, s.data(), kBlock);
    benchmark::DoNotOptimize(s.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * tokens);
}

void BM_AccCodesBf16(benchmark::State& st) {
  const int tokens = int(st.range(1));
  const CodeBlock cb(int(st.range(0)), 128, tokens);
  if (!tq::kv::bf16_values_available()) {
    st.SkipWithError("no AVX-512 BF16 + VBMI on this CPU");
    return;
  }
  const auto w = randn(kRows * kBlock, 2);
  const tq::kv::Bf16Table tab = tq::kv::make_bf16_table(cb.bits, cb.table.data());
  std::vector<float> acc(kRows * 128);
  for (auto _ : st) {
    for (int t = 0; t < tokens; t += kBlock)
      tq::kv::acc_codes_bf16(cb.bits, cb.m, tq::kv::OneSegment{cb.codes.data() + size_t(t) * cb.stride, kBlock, cb.stride}.run(), 0,
                             tab, w.data(), kBlock, kRows, acc.data(), 128);
    benchmark::DoNotOptimize(acc.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * tokens);
}

void BM_AccCodes(benchmark::State& st) {
  const int tokens = int(st.range(1));
  const CodeBlock cb(int(st.range(0)), 128, tokens);
  const auto w = randn(kRows * kBlock, 2);
  std::vector<float> acc(kRows * 128);
  for (auto _ : st) {
    for (int t = 0; t < tokens; t += kBlock)
      tq::kv::acc_codes(cb.bits, cb.m, tq::kv::OneSegment{cb.codes.data() + size_t(t) * cb.stride, kBlock, cb.stride}.run(), 0, cb.table.data(),
                        w.data(), kBlock, kRows, acc.data(), 128);
    benchmark::DoNotOptimize(acc.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * tokens);
}

// The lookup-table alternatives on the same data (attn_alt_kernels.h).
void BM_DotCodesLutGather(benchmark::State& st) {
  const CodeBlock cb(int(st.range(0)), 128, kTokens);
  if (!tq::kv::lut_gather_supported(cb.bits, 128)) {
    st.SkipWithError("no gather variant on this SIMD target");
    return;
  }
  // One call for all tokens: the tables are built once per query, as an engine would.
  const auto q = randn(kRows * 128, 1);
  std::vector<float> s(size_t(kRows) * kTokens);
  for (auto _ : st) {
    tq::kv::dot_codes_lut_gather(cb.bits, cb.m, tq::kv::OneSegment{cb.codes.data(), kTokens, cb.stride}.run(), 0,
                                 cb.table.data(), q.data(), 128, kRows, s.data(), kTokens);
    benchmark::DoNotOptimize(s.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * kTokens);
}

void BM_AccCodesHistogram(benchmark::State& st) {
  const CodeBlock cb(int(st.range(0)), 128, kTokens);
  // One call for all tokens: the histograms become values once, at the end.
  const auto w = randn(size_t(kRows) * kTokens, 2);
  std::vector<float> acc(kRows * 128);
  for (auto _ : st) {
    tq::kv::acc_codes_histogram(cb.bits, cb.m, tq::kv::OneSegment{cb.codes.data(), kTokens, cb.stride}.run(), 0,
                                cb.table.data(), w.data(), kTokens, kRows, acc.data(), 128);
    benchmark::DoNotOptimize(acc.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * kTokens);
}

void BM_DotRows(benchmark::State& st) {
  const tq::DType dt = st.range(0) == 32 ? tq::DType::kF32 : tq::DType::kF16;
  const size_t bytes = st.range(0) == 32 ? 512 : 256;
  std::vector<uint8_t> rows(bytes * kTokens, 0x11);
  const auto q = randn(kRows * 128, 1);
  std::vector<float> s(size_t(kRows) * kBlock);
  for (auto _ : st) {
    for (int t = 0; t < kTokens; t += kBlock)
      tq::kv::dot_rows(dt, 128, tq::kv::OneSegment{rows.data() + size_t(t) * bytes, kBlock, bytes}.run(), q.data(), 128, kRows, s.data(), kBlock);
    benchmark::DoNotOptimize(s.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * kTokens);
}

void BM_AccRows(benchmark::State& st) {
  const tq::DType dt = st.range(0) == 32 ? tq::DType::kF32 : tq::DType::kF16;
  const size_t bytes = st.range(0) == 32 ? 512 : 256;
  std::vector<uint8_t> rows(bytes * kTokens, 0x11);
  const auto w = randn(kRows * kBlock, 2);
  std::vector<float> acc(kRows * 128);
  for (auto _ : st) {
    for (int t = 0; t < kTokens; t += kBlock)
      tq::kv::acc_rows(dt, 128, tq::kv::OneSegment{rows.data() + size_t(t) * bytes, kBlock, bytes}.run(), w.data(), kBlock, kRows, acc.data(), 128);
    benchmark::DoNotOptimize(acc.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * kTokens);
}

// A whole decode step: B=1, Hq=32, Hkv=8, D=128 (the ANCHORS shape), one thread or all; range 3 =
// 1: V in token quads (KvCacheConfig::v_quads: whole blocks unpacked per step).
const char* kCodecs[] = {"fp32", "fp16", "tq4", "tq3", "tq2", "k4v3", "tq3p"};

void BM_Attend(benchmark::State& st) {
  const char* codec = kCodecs[st.range(0)];
  const int T = int(st.range(1)), threads = int(st.range(2));
  tq::KvCacheConfig cfg;
  cfg.v_quads = st.range(3) != 0;
  cfg.n_kv_heads = 8;
  cfg.head_dim = 128;
  cfg.codec = codec;
  cfg.num_pages = (T + 15) / 16;
  tq::KvCache cache(cfg);
  const int s = cache.add_sequence();
  for (int t0 = 0; t0 < T; t0 += 1024) {
    const int n = std::min(1024, T - t0);
    const auto k = randn(size_t(n) * 8 * 128, uint64_t(t0) + 1), v = randn(size_t(n) * 8 * 128, uint64_t(t0) + 2);
    cache.append(0, s, n, {k.data()}, {v.data()});
  }
  const auto q = randn(32 * 128, 9);
  std::vector<float> out(q.size());
  tq::AttendQuery a;
  a.seqs = &s;
  a.batch = 1;
  a.heads_q = 32;
  a.q = q.data();
  a.out = out.data();
  tq::AttentionOptions o;
  o.threads = threads;
  for (auto _ : st) tq::attend(cache, 0, a, o);
  st.SetLabel(std::string(codec) + (cfg.v_quads ? " quads" : ""));
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(cache.bytes_per_token(0)) * T);
}

BENCHMARK(BM_DotCodes)->ArgsProduct({{1, 2, 3, 4}, {kTokens}})->Args({3, 1 << 18});
BENCHMARK(BM_DotCodesI8)->ArgsProduct({{1, 2, 3, 4}, {kTokens}})->Args({3, 1 << 18});
BENCHMARK(BM_AccCodesBf16)->ArgsProduct({{1, 2, 3, 4}, {kTokens}})->Args({3, 1 << 18});
BENCHMARK(BM_AccCodes)->ArgsProduct({{1, 2, 3, 4}, {kTokens}})->Args({3, 1 << 18});
BENCHMARK(BM_DotCodesLutGather)->DenseRange(2, 4);
BENCHMARK(BM_AccCodesHistogram)->DenseRange(2, 4);
BENCHMARK(BM_DotRows)->Arg(32)->Arg(16);
BENCHMARK(BM_AccRows)->Arg(32)->Arg(16);
BENCHMARK(BM_Attend)
    ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6}, {1024, 4096, 16384}, {1, 0}, {0}})
    ->ArgsProduct({{3, 4, 5}, {4096, 16384}, {1, 0}, {1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
