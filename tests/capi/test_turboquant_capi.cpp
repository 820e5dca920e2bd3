// The C ABI of codecs, KV cache and attention (turboquant.h), the RAII wrapper (turboquant.hpp),
// and the Python ctypes smoke test (capi_smoke.py) run against the shared library.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "test_util.h"
#include "turboquant/codec.h"
#include "turboquant/turboquant.h"
#include "turboquant/turboquant.hpp"

namespace {

using tq::testing::randn;

TEST(CApiCodec, EncodeDecodeMatchesTheCppCodec) {
  tq_codec* c = nullptr;
  ASSERT_EQ(tq_codec_create("tq3", 100, &c), TQ_OK) << tq_last_error();
  size_t cs = 0;
  ASSERT_EQ(tq_codec_code_size(c, &cs), TQ_OK);
  auto cpp = tq::Codec::create(tq::parse_codec("tq3"), 100);
  EXPECT_EQ(cs, cpp->code_size());
  char name[64];
  ASSERT_EQ(tq_codec_name(c, name, sizeof(name)), TQ_OK);
  EXPECT_EQ(std::string(name), cpp->spec().name());
  const auto x = randn(5 * 100, 1);
  std::vector<uint8_t> a(5 * cs), b(5 * cs);
  ASSERT_EQ(tq_codec_encode(c, x.data(), 5, 0, a.data()), TQ_OK);
  cpp->encode(x.data(), 5, 100, b.data());
  EXPECT_EQ(a, b);
  std::vector<float> y(500), z(500);
  ASSERT_EQ(tq_codec_decode(c, a.data(), 5, y.data(), 100), TQ_OK);
  cpp->decode(b.data(), 5, z.data(), 100);
  EXPECT_EQ(y, z);
  tq_codec_destroy(c);
}

TEST(CApiCodec, ErrorsAreStatusAndMessage) {
  tq_codec* c = reinterpret_cast<tq_codec*>(0x1);
  EXPECT_EQ(tq_codec_create("bogus", 64, &c), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(c, nullptr);
  EXPECT_NE(std::string(tq_last_error()).find("bogus"), std::string::npos);
  EXPECT_EQ(tq_codec_create(nullptr, 64, &c), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_codec_create("tq3", 0, &c), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_codec_create("tq3", 64, nullptr), TQ_INVALID_ARGUMENT);
  size_t cs;
  EXPECT_EQ(tq_codec_code_size(nullptr, &cs), TQ_INVALID_ARGUMENT);
  ASSERT_EQ(tq_codec_create("tq3", 64, &c), TQ_OK);
  std::vector<float> x(64, NAN);
  std::vector<uint8_t> codes(64);
  EXPECT_EQ(tq_codec_encode(c, x.data(), 1, 0, codes.data()), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_codec_encode(c, x.data(), 1, 0, nullptr), TQ_INVALID_ARGUMENT);
  tq_codec_destroy(c);
  tq_codec_destroy(nullptr);
}

struct CacheFixture : ::testing::Test {
  tq_kv_cache* c = nullptr;
  static constexpr int Hkv = 2, D = 64, Hq = 6;
  void SetUp() override {
    tq_kv_cache_config cfg;
    tq_kv_cache_config_init(&cfg);
    cfg.n_layers = 2;
    cfg.n_kv_heads = Hkv;
    cfg.head_dim = D;
    cfg.codec = "k4v3";
    cfg.num_pages = 8;
    cfg.page_tokens = 8;
    ASSERT_EQ(tq_kv_cache_create(&cfg, &c), TQ_OK) << tq_last_error();
  }
  void TearDown() override { tq_kv_cache_destroy(c); }
};

TEST_F(CacheFixture, AppendAttendMatchesReference) {
  int s = -1;
  ASSERT_EQ(tq_kv_cache_add_sequence(c, &s), TQ_OK);
  const auto k = randn(size_t(20) * Hkv * D, 2), v = randn(size_t(20) * Hkv * D, 3);
  ASSERT_EQ(tq_kv_cache_append(c, 1, s, 20, k.data(), v.data(), TQ_F32, 0, 0), TQ_OK) << tq_last_error();
  int len = 0;
  ASSERT_EQ(tq_kv_cache_seq_len(c, 1, s, &len), TQ_OK);
  EXPECT_EQ(len, 20);
  const int ql = 2;
  const auto q = randn(size_t(ql) * Hq * D, 4);
  std::vector<float> out(q.size()), ref(q.size());
  tq_attend_args a;
  tq_attend_args_init(&a);
  a.seqs = &s;
  a.q_lens = &ql;
  a.batch = 1;
  a.heads_q = Hq;
  a.q = q.data();
  a.out = out.data();
  ASSERT_EQ(tq_kv_cache_attend(c, 1, &a), TQ_OK) << tq_last_error();
  a.out = ref.data();
  ASSERT_EQ(tq_kv_cache_attend_reference(c, 1, &a), TQ_OK);
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    num += (out[i] - ref[i]) * (out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  EXPECT_LT(std::sqrt(num / den), 1.5e-2) << "int8 scores (default)";
  a.out = out.data();
  a.fp32_scores = 1;
  ASSERT_EQ(tq_kv_cache_attend(c, 1, &a), TQ_OK) << tq_last_error();
  num = den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    num += (out[i] - ref[i]) * (out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  EXPECT_LT(std::sqrt(num / den), 2e-5) << "fp32 scores";
  tq_kv_memory m;
  ASSERT_EQ(tq_kv_cache_memory(c, &m), TQ_OK);
  EXPECT_EQ(m.pages_used, 3u);
  EXPECT_DOUBLE_EQ(m.bytes_per_token, 2 * Hkv * (34.0 + 26.0));  // two layers; k4: 32+2, v3: 24+2 at D=64
}

TEST_F(CacheFixture, ErrorsLeaveTheCacheUnchanged) {
  int s = -1;
  ASSERT_EQ(tq_kv_cache_add_sequence(c, &s), TQ_OK);
  const auto k = randn(size_t(100) * Hkv * D, 5);
  ASSERT_EQ(tq_kv_cache_append(c, 0, s, 10, k.data(), k.data(), TQ_F32, 0, 0), TQ_OK);
  EXPECT_EQ(tq_kv_cache_append(c, 0, s, 100, k.data(), k.data(), TQ_F32, 0, 0), TQ_OUT_OF_MEMORY);
  EXPECT_NE(std::string(tq_last_error()).find("exhausted"), std::string::npos) << tq_last_error();
  EXPECT_EQ(tq_kv_cache_append(c, 0, 42, 1, k.data(), k.data(), TQ_F32, 0, 0), TQ_OUT_OF_RANGE);
  EXPECT_EQ(tq_kv_cache_append(c, 5, s, 1, k.data(), k.data(), TQ_F32, 0, 0), TQ_OUT_OF_RANGE);
  EXPECT_EQ(tq_kv_cache_append(c, 0, s, 1, k.data(), k.data(), static_cast<tq_dtype>(9), 0, 0), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_kv_cache_append(c, 0, s, 1, nullptr, k.data(), TQ_F32, 0, 0), TQ_INVALID_ARGUMENT);
  int len = 0;
  ASSERT_EQ(tq_kv_cache_seq_len(c, 0, s, &len), TQ_OK);
  EXPECT_EQ(len, 10);
  std::vector<float> q(Hq * D, 1.f), out(Hq * D, 9.f);
  tq_attend_args a;
  tq_attend_args_init(&a);
  a.seqs = &s;
  a.batch = 1;
  a.heads_q = 5;  // not a multiple of Hkv
  a.q = q.data();
  a.out = out.data();
  EXPECT_EQ(tq_kv_cache_attend(c, 0, &a), TQ_INVALID_ARGUMENT);
  EXPECT_NE(std::string(tq_last_error()).find("multiple"), std::string::npos);
  a.heads_q = Hq;
  a.threads = -1;
  EXPECT_EQ(tq_kv_cache_attend(c, 0, &a), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_kv_cache_attend(c, 0, nullptr), TQ_INVALID_ARGUMENT);
  for (float x : out) ASSERT_EQ(x, 9.f);
  EXPECT_EQ(tq_kv_cache_remove_sequence(c, 7), TQ_OUT_OF_RANGE);
  EXPECT_EQ(tq_kv_cache_remove_sequence(c, s), TQ_OK);
  EXPECT_EQ(tq_kv_cache_seq_len(c, 0, s, &len), TQ_OUT_OF_RANGE);
  tq_kv_cache_config bad;
  tq_kv_cache_config_init(&bad);
  tq_kv_cache* none = nullptr;
  EXPECT_EQ(tq_kv_cache_create(&bad, &none), TQ_INVALID_ARGUMENT) << "num_pages 0";
  bad.num_pages = 4;
  bad.codec = "k=tq4,v=what";
  EXPECT_EQ(tq_kv_cache_create(&bad, &none), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(none, nullptr);
}

TEST(CApiDense, OneShotAttentionMatchesTheCacheReference) {
  const int B = 2, Hq = 4, Hkv = 2, T = 33, D = 32;
  const auto q = randn(size_t(B) * Hq * D, 6), k = randn(size_t(B) * Hkv * T * D, 7), v = randn(size_t(B) * Hkv * T * D, 8);
  std::vector<float> out(q.size());
  ASSERT_EQ(tq_attention_dense(q.data(), k.data(), v.data(), B, Hq, Hkv, T, D, "fp32", "fp32", 0.f, out.data()), TQ_OK);
  // fp32 codecs are exact: compare with a direct float64 computation.
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < Hq; ++h) {
      const int g = h / (Hq / Hkv);
      std::vector<double> p(static_cast<size_t>(T));
      double mx = -1e300, den = 0;
      for (int t = 0; t < T; ++t) {
        double s = 0;
        for (int j = 0; j < D; ++j) s += double(q[(b * Hq + h) * D + j]) * k[((b * Hkv + g) * T + t) * D + j];
        p[size_t(t)] = s / std::sqrt(double(D));
        mx = std::max(mx, p[size_t(t)]);
      }
      for (auto& x : p) den += (x = std::exp(x - mx));
      for (int j = 0; j < D; ++j) {
        double o = 0;
        for (int t = 0; t < T; ++t) o += p[size_t(t)] * v[((b * Hkv + g) * T + t) * D + j];
        EXPECT_NEAR(out[(b * Hq + h) * D + j], o / den, 1e-5);
      }
    }
  EXPECT_EQ(tq_attention_dense(q.data(), k.data(), v.data(), B, 3, Hkv, T, D, "tq3", "tq3", 0.f, out.data()),
            TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_attention_dense(q.data(), k.data(), v.data(), B, Hq, Hkv, T, D, "tq3", nullptr, 0.f, out.data()),
            TQ_INVALID_ARGUMENT);
}

TEST(CppWrapper, RaiiAndExceptions) {
  turboquant::Codec codec("tq4", 64);
  EXPECT_EQ(codec.code_size(), 34u);
  const auto x = randn(3 * 64, 9);
  const auto y = codec.decode(codec.encode(x.data(), 3));
  EXPECT_EQ(y.size(), x.size());
  try {
    turboquant::Codec bad("tq0", 64);
    FAIL();
  } catch (const turboquant::Error& e) {
    EXPECT_EQ(e.status(), TQ_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find("tq0"), std::string::npos);
  }
  turboquant::KvCache cache(turboquant::KvCache::Config{}.layers(2).kv_heads(1).head_dim(64).codec("tq3").pages(4, 4).window(2));
  const int s = cache.add_sequence();
  const auto kv = randn(5 * 64, 10);  // 5 tokens of one head
  cache.append(1, s, 5, kv.data(), kv.data());
  EXPECT_EQ(cache.seq_len(1, s), 5);
  std::vector<float> q(2 * 64, 0.5f), out(q.size()), ref(q.size());
  cache.attend(1, {s}, 2, q.data(), out.data(), {}, 0, false, /*fp32_scores=*/true);
  cache.attend(1, {s}, 2, q.data(), ref.data(), {}, 0, true);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], ref[i], 1e-5);
  turboquant::KvCache moved = std::move(cache);
  EXPECT_EQ(moved.seq_len(1, s), 5);
  const auto many = randn(100 * 64, 11);
  EXPECT_THROW(moved.append(0, s, 100, many.data(), many.data()), turboquant::Error);  // 4 pages of 4
  EXPECT_THROW(moved.seq_len(0, 3), turboquant::Error);
}

TEST(CApiPython, CtypesSmokeTest) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan build: python3 cannot load an instrumented library without LD_PRELOAD of the runtime";
#endif
  const std::string py = std::system("test -x /usr/bin/python3 && /usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0
                             ? "/usr/bin/python3"
                             : "python3";
  const std::string cmd = py + " " + TQ_SOURCE_DIR + "/tests/capi/capi_smoke.py " + TQ_SHARED_LIB + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int st = pclose(p);
  const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  if (code == 77) GTEST_SKIP() << "python3 with numpy not available: " << out;
  EXPECT_EQ(code, 0) << out;
  std::printf("%s", out.c_str());
}

}  // namespace
