// Bad input through the public C API (turboquant.h, turboquant_index.h) and the CLI: every case
// must give a clear status + message (or a documented defined result) and leave objects unchanged.
// Issue 8's list: wrong shapes and strides, dimension 0 and 1, huge dimensions, T = 0, NaN / Inf in
// q, k or v, all-zero vectors, unknown codecs, unsupported bit counts, exhausted pools, truncated and
// corrupted files. Each area's own tests go deeper; this file is the one checklist over all of them.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"
#include "turboquant/turboquant.h"
#include "turboquant/turboquant_index.h"

namespace {

using tq::testing::randn;

std::string last_error() { return tq_last_error(); }

// ---- codecs ----
TEST(BadInput, CodecStringsDimensionsAndBits) {
  tq_codec* c = nullptr;
  for (const char* spec : {"", "tq", "tq0", "tq9", "tq3.7", "tq-1", "fp17", "q3x", "tq3:rot=foo", "tq3:seed=",
                           "k4v3" /* a KV pair is not one codec */, "tq3::", "\xff\xfe"}) {
    EXPECT_NE(tq_codec_create(spec, 128, &c), TQ_OK) << spec;
    EXPECT_EQ(c, nullptr) << spec;
    EXPECT_FALSE(last_error().empty()) << spec;
  }
  for (int dim : {0, -1, 1})  // TurboQuant needs d >= 2 (a unit vector in 1-D is its sign)
    EXPECT_NE(tq_codec_create("tq3", dim, &c), TQ_OK) << dim;
  EXPECT_NE(tq_codec_create("fp16", 0, &c), TQ_OK);
  EXPECT_NE(tq_codec_create("tq3", std::numeric_limits<int>::max(), &c), TQ_OK) << "huge dimension";
  EXPECT_NE(last_error().find("dim"), std::string::npos) << last_error();
  EXPECT_NE(tq_codec_create("tq3", 40000, &c), TQ_OK) << "dense rotation of d = 40000: 13 GB and an O(d^3) QR";
  EXPECT_NE(last_error().find("too large"), std::string::npos) << last_error();
  ASSERT_EQ(tq_codec_create("tq3", 65536, &c), TQ_OK) << "Hadamard: any power of two up to the limit";
  tq_codec_destroy(c);
  ASSERT_EQ(tq_codec_create("fp16", 1, &c), TQ_OK) << last_error();  // pass-through takes d = 1
  tq_codec_destroy(c);
}

TEST(BadInput, NonFiniteAndZeroVectors) {
  tq_codec* c = nullptr;
  ASSERT_EQ(tq_codec_create("tq3", 64, &c), TQ_OK);
  size_t cs = 0;
  ASSERT_EQ(tq_codec_code_size(c, &cs), TQ_OK);
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<float> x = randn(3 * 64, 1);
    x[64 + 17] = bad;
    std::vector<uint8_t> codes(3 * cs, 0xAB);
    EXPECT_EQ(tq_codec_encode(c, x.data(), 3, 0, codes.data()), TQ_INVALID_ARGUMENT);
    for (uint8_t b : codes) ASSERT_EQ(b, 0xAB) << "nothing written on failure";
  }
  std::vector<float> zero(64, 0.f), y(64, 7.f);
  std::vector<uint8_t> codes(cs);
  ASSERT_EQ(tq_codec_encode(c, zero.data(), 1, 0, codes.data()), TQ_OK);
  ASSERT_EQ(tq_codec_decode(c, codes.data(), 1, y.data(), 0), TQ_OK);
  for (float v : y) EXPECT_EQ(v, 0.f) << "a zero vector round-trips to zero";
  std::vector<float> x = randn(64, 2);
  EXPECT_EQ(tq_codec_encode(c, x.data(), 2, 10, codes.data()), TQ_INVALID_ARGUMENT) << "stride < dim";
  tq_codec_destroy(c);
}

// ---- KV cache + attention ----
struct Cache {
  tq_kv_cache* c = nullptr;
  int Hkv = 2, D = 32;
  explicit Cache(const char* codec, int num_pages = 4, int page_tokens = 8) {
    tq_kv_cache_config cfg;
    tq_kv_cache_config_init(&cfg);
    cfg.n_kv_heads = Hkv;
    cfg.head_dim = D;
    cfg.codec = codec;
    cfg.num_pages = num_pages;
    cfg.page_tokens = page_tokens;
    EXPECT_EQ(tq_kv_cache_create(&cfg, &c), TQ_OK) << last_error();
  }
  ~Cache() { tq_kv_cache_destroy(c); }
  int len(int s) {
    int n = -1;
    EXPECT_EQ(tq_kv_cache_seq_len(c, 0, s, &n), TQ_OK);
    return n;
  }
};

TEST(BadInput, CacheConfigs) {
  tq_kv_cache* c = nullptr;
  auto bad = [&](auto edit, const char* what) {
    tq_kv_cache_config cfg;
    tq_kv_cache_config_init(&cfg);
    cfg.num_pages = 4;
    edit(cfg);
    EXPECT_NE(tq_kv_cache_create(&cfg, &c), TQ_OK) << what;
    EXPECT_EQ(c, nullptr) << what;
    EXPECT_FALSE(last_error().empty()) << what;
  };
  bad([](tq_kv_cache_config& g) { g.head_dim = 0; }, "head_dim 0");
  bad([](tq_kv_cache_config& g) { g.head_dim = 1 << 30; }, "huge head_dim");
  bad([](tq_kv_cache_config& g) { g.n_kv_heads = 0; }, "no heads");
  bad([](tq_kv_cache_config& g) { g.n_layers = -2; }, "negative layers");
  bad([](tq_kv_cache_config& g) { g.page_tokens = 0; }, "page_tokens 0");
  bad([](tq_kv_cache_config& g) { g.codec = "k4"; }, "half a KV codec");
  bad([](tq_kv_cache_config& g) { g.codec = "tq11"; }, "unsupported bits");
  bad([](tq_kv_cache_config& g) { g.codec = nullptr; }, "null codec");
  bad([](tq_kv_cache_config& g) { g.window = -1; }, "negative window");
  bad([](tq_kv_cache_config& g) { g.num_pages = -5; }, "negative pool");
}

TEST(BadInput, AppendRejectsAndKeepsTheCache) {
  Cache k("tq3");
  int s = -1;
  ASSERT_EQ(tq_kv_cache_add_sequence(k.c, &s), TQ_OK);
  auto x = randn(size_t(40) * k.Hkv * k.D, 3);
  ASSERT_EQ(tq_kv_cache_append(k.c, 0, s, 5, x.data(), x.data(), TQ_F32, 0, 0), TQ_OK) << last_error();
  tq_kv_memory before{};
  ASSERT_EQ(tq_kv_cache_memory(k.c, &before), TQ_OK);
  auto with_nan = x;
  with_nan[size_t(2) * k.Hkv * k.D + 3] = NAN;  // token 2 of the batch: tokens 0-1 must not land
  EXPECT_EQ(tq_kv_cache_append(k.c, 0, s, 4, with_nan.data(), x.data(), TQ_F32, 0, 0), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_kv_cache_append(k.c, 0, s, 4, x.data(), with_nan.data(), TQ_F32, 0, 0), TQ_INVALID_ARGUMENT);
  auto with_inf = x;
  with_inf[7] = INFINITY;
  EXPECT_EQ(tq_kv_cache_append(k.c, 0, s, 1, with_inf.data(), x.data(), TQ_F32, 0, 0), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_kv_cache_append(k.c, 0, s, -1, x.data(), x.data(), TQ_F32, 0, 0), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_kv_cache_append(k.c, 0, s, 1, x.data(), x.data(), TQ_F32, -64, 0), TQ_INVALID_ARGUMENT)
      << "negative token stride";
  EXPECT_EQ(tq_kv_cache_append(k.c, 0, s, 1, x.data(), x.data(), TQ_F32, 0, -1), TQ_INVALID_ARGUMENT)
      << "negative head stride";
  EXPECT_EQ(tq_kv_cache_append(k.c, 0, s, 40, x.data(), x.data(), TQ_F32, 0, 0), TQ_OUT_OF_MEMORY) << "pool";
  EXPECT_EQ(tq_kv_cache_append(k.c, 0, -1, 1, x.data(), x.data(), TQ_F32, 0, 0), TQ_OUT_OF_RANGE);
  EXPECT_EQ(k.len(s), 5);
  tq_kv_memory after{};
  ASSERT_EQ(tq_kv_cache_memory(k.c, &after), TQ_OK);
  EXPECT_EQ(after.pages_used, before.pages_used);
  EXPECT_EQ(after.bytes_used, before.bytes_used);
  EXPECT_EQ(tq_kv_cache_append(k.c, 0, s, 0, x.data(), x.data(), TQ_F32, 0, 0), TQ_OK) << "n = 0 is a no-op";
  EXPECT_EQ(k.len(s), 5);
}

TEST(BadInput, AttendShapesEmptySequencesAndNonFiniteQ) {
  Cache k("k4v3");
  int s = -1, e = -1;
  ASSERT_EQ(tq_kv_cache_add_sequence(k.c, &s), TQ_OK);
  ASSERT_EQ(tq_kv_cache_add_sequence(k.c, &e), TQ_OK);  // stays empty: T = 0
  auto x = randn(size_t(9) * k.Hkv * k.D, 4);
  ASSERT_EQ(tq_kv_cache_append(k.c, 0, s, 9, x.data(), x.data(), TQ_F32, 0, 0), TQ_OK);
  const int Hq = 4;
  auto q = randn(size_t(Hq) * k.D, 5);
  std::vector<float> out(q.size(), 9.f);
  tq_attend_args a;
  tq_attend_args_init(&a);
  a.batch = 1;
  a.heads_q = Hq;
  a.q = q.data();
  a.out = out.data();
  auto untouched = [&] {
    for (float v : out) ASSERT_EQ(v, 9.f);
  };
  a.seqs = &e;  // T = 0: nothing to attend to
  EXPECT_NE(tq_kv_cache_attend(k.c, 0, &a), TQ_OK);
  EXPECT_NE(last_error().find("empty"), std::string::npos) << last_error();
  untouched();
  a.seqs = &s;
  a.heads_q = 3;  // not a multiple of Hkv = 2
  EXPECT_EQ(tq_kv_cache_attend(k.c, 0, &a), TQ_INVALID_ARGUMENT);
  a.heads_q = Hq;
  const int too_many = 10;  // more new tokens than the sequence holds
  a.q_lens = &too_many;
  EXPECT_NE(tq_kv_cache_attend(k.c, 0, &a), TQ_OK);
  a.q_lens = nullptr;
  a.out_head_stride = 3;  // output rows would overlap (input views may overlap: read-only)
  EXPECT_EQ(tq_kv_cache_attend(k.c, 0, &a), TQ_INVALID_ARGUMENT);
  a.out_head_stride = 0;
  a.q_dtype = static_cast<tq_dtype>(7);
  EXPECT_EQ(tq_kv_cache_attend(k.c, 0, &a), TQ_INVALID_ARGUMENT);
  a.q_dtype = TQ_F32;
  int bad_seq = 99;
  a.seqs = &bad_seq;
  EXPECT_EQ(tq_kv_cache_attend(k.c, 0, &a), TQ_OUT_OF_RANGE);
  a.seqs = &s;
  EXPECT_EQ(tq_kv_cache_attend(k.c, 3, &a), TQ_OUT_OF_RANGE) << "layer";
  a.batch = 0;
  EXPECT_EQ(tq_kv_cache_attend(k.c, 0, &a), TQ_INVALID_ARGUMENT);
  a.batch = 1;
  untouched();
  q[5] = NAN;  // a NaN query is the caller's data: rejected, like NaN keys
  EXPECT_EQ(tq_kv_cache_attend(k.c, 0, &a), TQ_INVALID_ARGUMENT);
  untouched();
  q[5] = 0.f;
  ASSERT_EQ(tq_kv_cache_attend(k.c, 0, &a), TQ_OK) << last_error();
  for (float v : out) ASSERT_TRUE(std::isfinite(v));
}

TEST(BadInput, DenseAttention) {
  const int B = 1, Hq = 2, Hkv = 1, T = 4, D = 16;
  auto q = randn(size_t(B) * Hq * D, 6), kv = randn(size_t(B) * Hkv * T * D, 7);
  std::vector<float> out(q.size(), 9.f);
  EXPECT_NE(tq_attention_dense(q.data(), kv.data(), kv.data(), B, Hq, Hkv, 0, D, "tq3", "tq3", 0.f, out.data()),
            TQ_OK) << "T = 0";
  EXPECT_NE(tq_attention_dense(q.data(), kv.data(), kv.data(), B, 3, 2, T, D, "tq3", "tq3", 0.f, out.data()), TQ_OK);
  EXPECT_NE(tq_attention_dense(q.data(), kv.data(), kv.data(), B, Hq, Hkv, T, D, "tq3", "zz", 0.f, out.data()), TQ_OK);
  EXPECT_NE(tq_attention_dense(q.data(), kv.data(), kv.data(), B, Hq, Hkv, T, D, "tq3", "tq3", -1.f, out.data()),
            TQ_OK) << "negative scale";
  kv[3] = INFINITY;
  EXPECT_NE(tq_attention_dense(q.data(), kv.data(), kv.data(), B, Hq, Hkv, T, D, "tq3", "tq3", 0.f, out.data()), TQ_OK);
  for (float v : out) ASSERT_EQ(v, 9.f);
}

// ---- index ----
TEST(BadInput, IndexFilesAndQueries) {
  tq_index* ix = nullptr;
  EXPECT_NE(tq_index_create(16, "TQ4,what", TQ_METRIC_IP, &ix), TQ_OK);
  EXPECT_NE(tq_index_create(0, "TQ4", TQ_METRIC_IP, &ix), TQ_OK);
  EXPECT_NE(tq_index_create(16, "TQ4", static_cast<tq_metric>(5), &ix), TQ_OK);
  ASSERT_EQ(tq_index_create(16, "TQ4", TQ_METRIC_IP, &ix), TQ_OK) << last_error();
  auto x = randn(50 * 16, 8);
  std::vector<float> dist(64);
  std::vector<int64_t> ids(64);
  EXPECT_NE(tq_index_search(ix, x.data(), 1, 16, 5, 1, dist.data(), ids.data()), TQ_OK) << "empty index";
  ASSERT_EQ(tq_index_add(ix, x.data(), 50, 16, nullptr), TQ_OK) << last_error();
  EXPECT_NE(tq_index_add(ix, x.data(), 50, 15, nullptr), TQ_OK) << "dimension mismatch";
  auto nan = x;
  nan[16 * 3 + 2] = NAN;
  EXPECT_NE(tq_index_add(ix, nan.data(), 50, 16, nullptr), TQ_OK);
  size_t n = 0;
  ASSERT_EQ(tq_index_size(ix, &n), TQ_OK);
  EXPECT_EQ(n, 50u) << "a rejected add adds nothing";
  EXPECT_NE(tq_index_search(ix, x.data(), 1, 16, 51, 1, dist.data(), ids.data()), TQ_OK) << "k > ntotal";
  EXPECT_NE(tq_index_search(ix, x.data(), 1, 16, 0, 1, dist.data(), ids.data()), TQ_OK) << "k = 0";
  EXPECT_NE(tq_index_search(ix, nan.data() + 16 * 3, 1, 16, 5, 1, dist.data(), ids.data()), TQ_OK) << "NaN query";
  const std::string path = ::testing::TempDir() + "/bad_input.tqi";
  ASSERT_EQ(tq_index_save(ix, path.c_str()), TQ_OK) << last_error();
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  for (size_t cut : {size_t(0), size_t(7), bytes.size() / 2, bytes.size() - 1}) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(cut));
    tq_index* back = nullptr;
    EXPECT_NE(tq_index_load(path.c_str(), &back), TQ_OK) << "truncated at " << cut;
    EXPECT_EQ(back, nullptr);
  }
  std::string flipped = bytes;
  flipped[flipped.size() / 3] ^= 0x10;
  std::ofstream(path, std::ios::binary).write(flipped.data(), std::streamsize(flipped.size()));
  tq_index* back = nullptr;
  EXPECT_NE(tq_index_load(path.c_str(), &back), TQ_OK) << "corrupted";
  EXPECT_NE(tq_index_load("/nonexistent/dir/x.tqi", &back), TQ_OK);
  tq_index_free(ix);
}

// ---- CLI: exit status 1 and a one-line message, never an abort or a stack trace ----
TEST(BadInput, CliFailsWithOneLine) {
  const std::string dir = ::testing::TempDir();
  { std::ofstream(dir + "/junk.npy") << "not a numpy file"; }
  { std::ofstream(dir + "/junk.gguf") << "GGUF\x03\x00\x00\x00 truncated"; }
  { std::ofstream(dir + "/junk.tqi") << "TQIX"; }
  const std::vector<std::string> cases = {
      "roundtrip --codec tq42 --in " + dir + "/junk.npy --out " + dir + "/o.npy",
      "roundtrip --codec tq3 --in " + dir + "/junk.npy --out " + dir + "/o.npy",
      "roundtrip --codec tq3 --in /nonexistent.npy --out " + dir + "/o.npy",
      "distortion --dim 0 --bits 3",
      "distortion --dim 128 --bits 0",
      "attention --q " + dir + "/junk.npy --k " + dir + "/junk.npy --v " + dir + "/junk.npy --codec-k tq4 --codec-v tq3 --out " + dir + "/o.npy",
      "ann --base " + dir + "/junk.npy --queries " + dir + "/junk.npy --k 10 --index TQ4",
      "perplexity --model " + dir + "/junk.gguf --text /dev/null --ctx 64 --kv tq3",
      "generate --model " + dir + "/junk.gguf -n 4 --kv nonsense",
      "bench decode --device cpu --batch 1 --heads-q 3 --heads-kv 2 --head-dim 64 --context 16 --codecs fp16",
      "bench decode --device cuda9 --batch 1 --heads-q 4 --heads-kv 2 --head-dim 64 --context 16 --codecs fp16",
  };
  for (const auto& c : cases) {
    const auto r = tq::testing::run_cli(c);
    EXPECT_EQ(r.status, 1) << c << "\n" << r.out;
    EXPECT_NE(r.out.find("tq "), std::string::npos) << c << "\n" << r.out;
    EXPECT_EQ(r.out.find("terminate called"), std::string::npos) << c;
    EXPECT_EQ(r.out.find("Aborted"), std::string::npos) << c;
  }
}

}  // namespace
