// Determinism (issue 8): the same seed gives bit-identical codes across codec instances, processes
// (tests/cli: Cli.SameSeedSameBytesAcrossProcesses), thread counts and batching; a different seed
// gives different codes (so the comparisons can fail). CUDA append vs the CPU encoder: tests/cuda.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"
#include "turboquant/codec.h"
#include "turboquant/index.h"
#include "turboquant/kv_cache.h"
#include "turboquant/tq_codec.h"

namespace {

using tq::testing::randn;

std::vector<uint8_t> encode(const std::string& spec, int d, const std::vector<float>& x) {
  const auto c = tq::Codec::create(tq::parse_codec(spec), d);
  std::vector<uint8_t> out(x.size() / size_t(d) * c->code_size());
  c->encode(x.data(), x.size() / size_t(d), size_t(d), out.data());
  return out;
}

TEST(Determinism, SameSeedSameCodesOtherSeedOtherCodes) {
  for (const auto& [spec, d] : std::vector<std::pair<std::string, int>>{
           {"tq3", 128}, {"tq4", 100}, {"tq2.5", 128}, {"tq3p", 64}, {"q4r", 128}, {"tq3:rot=dense", 96}}) {
    const auto x = randn(size_t(d) * 200, 1);
    EXPECT_EQ(encode(spec, d, x), encode(spec, d, x)) << spec;
    EXPECT_NE(encode(spec, d, x), encode(spec + ":seed=12345", d, x)) << spec << ": the seed must matter";
  }
}

TEST(Determinism, BatchedEncoderIdenticalForAnyThreadCount) {
  for (const auto& [spec, d] : std::vector<std::pair<std::string, int>>{{"tq4", 128}, {"tq3", 100}, {"tq2.5", 96}}) {
    const auto c = tq::Codec::create(tq::parse_codec(spec), d);
    const auto* t = dynamic_cast<const tq::TqCodec*>(c.get());
    ASSERT_NE(t, nullptr);
    const size_t n = 1000;  // several blocks of the encoder, unequal shares per thread
    const auto x = randn(n * size_t(d), 2);
    std::vector<uint8_t> codes1(n * size_t(d));
    std::vector<float> norms1(n * t->parts().size());
    t->encode_unpacked(x.data(), n, size_t(d), codes1.data(), norms1.data(), 1);
    for (int threads : {2, 3, 4, 7}) {
      std::vector<uint8_t> codes(codes1.size());
      std::vector<float> norms(norms1.size());
      t->encode_unpacked(x.data(), n, size_t(d), codes.data(), norms.data(), threads);
      EXPECT_EQ(codes, codes1) << spec << " threads " << threads;
      EXPECT_EQ(norms, norms1) << spec << " threads " << threads;
    }
  }
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(Determinism, IndexFilesIdenticalForAnyThreadCount) {
  const int d = 100;
  const size_t n = 3000;
  const auto x = randn(n * d, 3);
  const std::string dir = ::testing::TempDir();
  std::string first;
  for (int threads : {1, 2, 4}) {
    tq::FlatIndex ix(d, "TQ4,nc");
    ix.add(x.data(), n, d, nullptr, threads);
    const std::string path = dir + "/det_" + std::to_string(threads) + ".tqi";
    ix.save(path);
    const std::string bytes = slurp(path);
    std::remove(path.c_str());
    ASSERT_FALSE(bytes.empty());
    if (first.empty()) first = bytes;
    EXPECT_TRUE(bytes == first) << "index file differs with " << threads << " threads";
  }
}

// Quantize-on-write does not depend on how appends are batched: one token at a time and all at once
// leave the same bytes in the pools (and the same pages, since the allocator is deterministic).
TEST(Determinism, CachePoolsIndependentOfAppendBatching) {
  tq::KvCacheConfig cfg;
  cfg.n_kv_heads = 2;
  cfg.head_dim = 64;
  cfg.codec = "k4v3";
  cfg.page_tokens = 8;
  cfg.num_pages = 16;
  tq::KvCache a(cfg), b(cfg);
  const int T = 37;
  const auto k = randn(size_t(T) * 2 * 64, 4), v = randn(size_t(T) * 2 * 64, 5);
  const int sa = a.add_sequence(), sb = b.add_sequence();
  a.append(0, sa, T, tq::KvInput{k.data()}, tq::KvInput{v.data()});
  for (int t = 0; t < T; ++t)
    b.append(0, sb, 1, tq::KvInput{k.data() + size_t(t) * 128}, tq::KvInput{v.data() + size_t(t) * 128});
  const auto la = a.layer_view(0), lb = b.layer_view(0);
  const size_t kbytes = size_t(cfg.num_pages) * la.k_layout.page_bytes();
  const size_t vbytes = size_t(cfg.num_pages) * la.v_layout.page_bytes();
  const auto va = a.seq_view(0, sa), vb = b.seq_view(0, sb);
  ASSERT_EQ(va.n_pages, vb.n_pages);
  for (int p = 0; p < va.n_pages; ++p) {
    ASSERT_EQ(va.pages[p], vb.pages[p]);
    const size_t kp = la.k_layout.page_bytes(), vp = la.v_layout.page_bytes();
    const int tokens = std::min(cfg.page_tokens, T - p * cfg.page_tokens);
    for (uint32_t h = 0; h < 2; ++h) {  // compare the written rows (page tails are unspecified)
      const size_t ko = size_t(va.pages[p]) * kp + la.k_layout.codes_offset(h, 0);
      const size_t vo = size_t(va.pages[p]) * vp + la.v_layout.codes_offset(h, 0);
      ASSERT_LE(ko + size_t(tokens) * la.k_layout.codes_bytes, kbytes);
      ASSERT_LE(vo + size_t(tokens) * la.v_layout.codes_bytes, vbytes);
      EXPECT_EQ(0, std::memcmp(la.k_pool + ko, lb.k_pool + ko, size_t(tokens) * la.k_layout.codes_bytes)) << p;
      EXPECT_EQ(0, std::memcmp(la.v_pool + vo, lb.v_pool + vo, size_t(tokens) * la.v_layout.codes_bytes)) << p;
      const size_t ks = size_t(va.pages[p]) * kp + la.k_layout.scalars_offset(h, 0);
      EXPECT_EQ(0, std::memcmp(la.k_pool + ks, lb.k_pool + ks, size_t(tokens) * la.k_layout.scalar_bytes)) << p;
    }
  }
}

}  // namespace
