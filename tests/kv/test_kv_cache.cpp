// KV cache: what is stored is exactly what the codec encodes, windows hold the recent tokens
// exactly, pages are allocated, freed and reused, memory is accounted, and every failed call
// leaves the cache unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "kv_test_util.h"
#include "turboquant/attention.h"
#include "turboquant/error.h"
#include "turboquant/half.h"

namespace {

using tq::DType;
using tq::KvCache;
using tq::KvCacheConfig;
using tq::KvInput;

KvCacheConfig small_cfg(const std::string& codec, int H = 2, int D = 40, int pt = 8, int pages = 64, int window = 0) {
  KvCacheConfig c;
  c.n_layers = 2;
  c.n_kv_heads = H;
  c.head_dim = D;
  c.codec = codec;
  c.page_tokens = pt;
  c.num_pages = pages;
  c.window = window;
  return c;
}

// Every encoded token's bytes (codes + scalars) equal Codec::encode of the input row.
void expect_stored_bytes_match(const KvCache& c, int layer, int seq, const std::vector<float>& k,
                               const std::vector<float>& v) {
  const tq::KvLayerView L = c.layer_view(layer);
  const tq::KvSeqView s = c.seq_view(layer, seq);
  const int H = c.n_kv_heads(), D = c.head_dim();
  for (int w = 0; w < 2; ++w) {
    const tq::Codec& codec = w ? *L.v_codec : *L.k_codec;
    const auto& src = w ? v : k;
    std::vector<uint8_t> want(codec.code_size()), got(codec.code_size());
    for (int t = 0; t < s.n_tokens; ++t)
      for (int h = 0; h < H; ++h) {
        const float* x = &src[(size_t(t) * H + h) * D];
        if (t < s.n_encoded) {
          codec.encode(x, 1, size_t(D), want.data());
          tq::kv::gather_code(w ? L.v_pool : L.k_pool, w ? L.v_layout : L.k_layout, s, h, t, got.data());
          ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size())) << "token " << t << " head " << h;
        } else {
          const float* r = tq::kv::window_row(s, c.window(), H, D, w == 1, h, t);
          ASSERT_EQ(0, std::memcmp(r, x, size_t(D) * 4)) << "window token " << t << " head " << h;
        }
      }
  }
}

TEST(PageAllocator, AllOrNothingFreeAndReuse) {
  tq::PageAllocator a(5);
  std::vector<int32_t> got;
  a.allocate(3, &got);
  EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2}));
  try {
    a.allocate(3, &got);
    FAIL() << "expected exhaustion";
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("exhausted"), std::string::npos);
  }
  EXPECT_EQ(got.size(), 3u);
  EXPECT_EQ(a.num_free(), 2);
  const int32_t back[] = {1};
  a.release(back, 1);
  EXPECT_FALSE(a.is_allocated(1));
  std::vector<int32_t> again;
  a.allocate(1, &again);
  EXPECT_EQ(again[0], 1) << "the most recently freed page is reused first";
  const int32_t twice[] = {0, 0};
  EXPECT_THROW(a.release(twice, 2), tq::Error);
  const int32_t bad[] = {7};
  EXPECT_THROW(a.release(bad, 1), tq::Error);
  const int32_t not_alloc[] = {4};
  EXPECT_THROW(a.release(not_alloc, 1), tq::Error);
  EXPECT_EQ(a.num_used(), 3) << "failed releases freed nothing";
  EXPECT_THROW(tq::PageAllocator(0), tq::Error);
}

// Appends in uneven chunks (crossing pages), for every kind of codec, with and without a window.
TEST(KvCache, StoresExactlyWhatTheCodecEncodes) {
  const char* codecs[] = {"fp32", "fp16", "bf16", "tq3", "tq4", "tq2.5", "tq3p", "k=tq4,v=tq2", "k=fp16,v=tq3", "q4",
                          "q8", "fp8", "kivi2"};
  for (const char* codec : codecs) {
    for (int window : {0, 5}) {
      SCOPED_TRACE(std::string(codec) + " window " + std::to_string(window));
      KvCache c(small_cfg(codec, 2, 40, 8, 64, window));
      const int s0 = c.add_sequence(), s1 = c.add_sequence();
      const int chunks[] = {1, 7, 3, 13, 1, 9};
      const int T = std::accumulate(std::begin(chunks), std::end(chunks), 0);
      const auto k = tqtest::randn(size_t(T) * 2 * 40, 11), v = tqtest::randn(size_t(T) * 2 * 40, 12);
      int at = 0;
      for (int n : chunks) {
        c.append(1, s1, n, {&k[size_t(at) * 80]}, {&v[size_t(at) * 80]});
        c.append(1, s0, 1, {&v[size_t(at) * 80]}, {&k[size_t(at) * 80]});  // interleaved sequences
        at += n;
      }
      EXPECT_EQ(c.seq_len(1, s1), T);
      EXPECT_EQ(c.seq_len(0, s1), 0);
      EXPECT_EQ(c.seq_view(1, s1).n_encoded, std::max(0, T - window));
      expect_stored_bytes_match(c, 1, s1, k, v);
    }
  }
}

// V in token quads (KvCacheConfig::v_quads, layout.h quad_pos): the same codes come back, the
// pages hold them in quads (layers whose V codec cannot: rows), and attention is the same as with
// rows, reference and fused, at odd lengths and windows.
TEST(KvCache, QuadVStoresTheSameCodesAndAttendsTheSame) {
  for (const char* codec : {"tq3", "tq1", "tq4", "k=fp16,v=tq2", "k4v3"})
    for (int window : {0, 5}) {
      SCOPED_TRACE(std::string(codec) + " window " + std::to_string(window));
      const int H = 2, D = 64, Hq = 4;
      KvCacheConfig rc = small_cfg(codec, H, D, 32, 64, window), qc = rc;
      qc.v_quads = true;
      qc.layer_codecs = {"fp16", codec};  // layer 0: fp16 V keeps rows
      rc.layer_codecs = qc.layer_codecs;
      KvCache rows(rc), quads(qc);
      EXPECT_EQ(quads.layer_view(0).v_layout.quad_bits, 0u);
      EXPECT_GT(quads.layer_view(1).v_layout.quad_bits, 0u);
      const int sr = rows.add_sequence(), sq = quads.add_sequence();
      const int chunks[] = {1, 7, 3, 13, 1, 40, 9};
      const int T = std::accumulate(std::begin(chunks), std::end(chunks), 0);
      const auto k = tqtest::randn(size_t(T) * H * D, 21), v = tqtest::randn(size_t(T) * H * D, 22);
      int at = 0;
      for (int n : chunks) {
        for (int l = 0; l < 2; ++l) {
          rows.append(l, sr, n, {&k[size_t(at) * H * D]}, {&v[size_t(at) * H * D]});
          quads.append(l, sq, n, {&k[size_t(at) * H * D]}, {&v[size_t(at) * H * D]});
        }
        at += n;
      }
      expect_stored_bytes_match(quads, 1, sq, k, v);
      // The first 16-token block of layer 1, head 1, is the quad packing of its rows.
      const tq::KvLayerView L = quads.layer_view(1);
      const tq::KvSeqView s = quads.seq_view(1, sq);
      const int b = int(L.v_layout.quad_bits);
      if (s.n_encoded >= 16) {
        const uint8_t* block = tq::kv::token_bytes(L.v_pool, L.v_layout, s, 1, 0).codes;
        for (int t = 0; t < 16; ++t) {
          std::vector<uint8_t> code(L.v_codec->code_size()), idx(D);
          L.v_codec->encode(&v[(size_t(t) * H + 1) * D], 1, size_t(D), code.data());
          for (int x = 0; x < D; ++x) ASSERT_EQ(tq::quad_get_code(block, b, t, x), tq::unpack_code_ref(code.data(), D, b, x));
        }
      }
      const auto q = tqtest::randn(size_t(Hq) * D, 23);
      for (bool fused : {false, true}) {
        std::vector<float> o1(size_t(Hq) * D), o2(o1.size());
        for (int l = 0; l < 2; ++l) {
          tq::AttendQuery a;
          a.seqs = &sr; a.batch = 1; a.heads_q = Hq; a.q = q.data(); a.out = o1.data();
          tq::AttendQuery b2 = a;
          b2.seqs = &sq; b2.out = o2.data();
          if (fused) { tq::attend(rows, l, a); tq::attend(quads, l, b2); }
          else { tq::attend_reference(rows, l, a); tq::attend_reference(quads, l, b2); }
          EXPECT_EQ(o1, o2) << (fused ? "fused" : "reference") << " layer " << l;
        }
      }
    }
}

// gather_rows of a quad layout (its fast block transpose, kv_read.cpp) against the layout's own
// definition: every token's row is pack_codes_ref of quad_get_code, for whole blocks, every offset
// in a block and runs that cross blocks and pages; fresh random blocks each run (seed printed).
TEST(KvCache, QuadGatherMatchesReference) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int b = 1; b <= 4; ++b)
    for (int d : {64, 128, 192, 256}) {
      SCOPED_TRACE("b " + std::to_string(b) + " d " + std::to_string(d));
      const tq::KvPageLayout L{32, 2, tq::packed_bytes(uint32_t(d), uint32_t(b)), 2, uint32_t(b)};
      const std::vector<int32_t> pages = {2, 0, 3};  // tokens 0..95, pages out of order
      std::vector<uint8_t> pool(size_t(4) * L.page_bytes());
      for (auto& x : pool) x = uint8_t(rng());  // every bit of a block is a code bit
      tq::KvSeqView s;
      s.n_tokens = s.n_encoded = 96;
      s.pages = pages.data();
      s.n_pages = 3;
      const size_t cb = L.codes_bytes;
      for (int head = 0; head < 2; ++head) {
        std::vector<uint8_t> want(96 * cb), codes(static_cast<size_t>(d));
        for (int t = 0; t < 96; ++t) {
          const uint8_t* block = tq::kv::token_bytes(pool.data(), L, s, head, t & ~15).codes;
          for (int x = 0; x < d; ++x) codes[size_t(x)] = uint8_t(tq::quad_get_code(block, b, t & 15, x));
          tq::pack_codes_ref(codes.data(), uint32_t(d), b, &want[size_t(t) * cb]);
        }
        std::vector<std::pair<int, int>> runs = {{0, 96}, {32, 64}, {16, 16}};  // (pos, n)
        for (int pos = 0; pos < 32; ++pos)
          for (int n : {1, 7, 16, 33}) runs.emplace_back(pos, n);
        for (const auto& [pos, n] : runs) {
          std::vector<uint8_t> got(size_t(n) * cb + 1, 0xA5);  // + a guard byte
          tq::kv::gather_rows(pool.data(), L, s, head, pos, n, got.data());
          ASSERT_EQ(got.back(), 0xA5) << "wrote past the rows, pos " << pos << " n " << n;
          ASSERT_EQ(0, std::memcmp(got.data(), &want[size_t(pos) * cb], size_t(n) * cb))
              << "head " << head << " pos " << pos << " n " << n;
        }
      }
    }
}

TEST(KvCache, QuadVNeedsWholeBlocks) {
  KvCacheConfig c = small_cfg("tq3", 2, 64, 8, 16);
  c.v_quads = true;
  EXPECT_THROW(KvCache{c}, tq::Error);  // page_tokens 8: no 16-token blocks
  c.page_tokens = 16;
  c.head_dim = 40;
  EXPECT_THROW(KvCache{c}, tq::Error);  // head_dim 40: not whole 64-coordinate groups of quads
  c.head_dim = 128;
  EXPECT_NO_THROW(KvCache{c});
}

TEST(KvCache, Float16AndBfloat16AndStridedInputsStoreTheSameAsFloat32) {
  const int H = 3, D = 33, n = 10;
  const auto k = tqtest::randn(size_t(n) * H * D, 1), v = tqtest::randn(size_t(n) * H * D, 2);
  for (DType dt : {DType::kF16, DType::kBF16}) {
    std::vector<uint16_t> k16(k.size()), v16(v.size());
    std::vector<float> kr(k.size()), vr(v.size());
    for (size_t i = 0; i < k.size(); ++i) {
      k16[i] = dt == DType::kF16 ? tq::float_to_half(k[i]) : tq::float_to_bf16(k[i]);
      v16[i] = dt == DType::kF16 ? tq::float_to_half(v[i]) : tq::float_to_bf16(v[i]);
      kr[i] = dt == DType::kF16 ? tq::half_to_float(k16[i]) : tq::bf16_to_float(k16[i]);
      vr[i] = dt == DType::kF16 ? tq::half_to_float(v16[i]) : tq::bf16_to_float(v16[i]);
    }
    KvCache c(small_cfg("tq3", H, D));
    const int s = c.add_sequence();
    c.append(0, s, n, {k16.data(), dt}, {v16.data(), dt});
    expect_stored_bytes_match(c, 0, s, kr, vr);
  }
  // Strided: heads interleaved with padding, tokens further apart.
  const int64_t hs = D + 5, ts = H * hs + 7;
  std::vector<float> ks(size_t(n) * ts), vs(size_t(n) * ts);
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < D; ++i) {
        ks[size_t(t * ts + h * hs + i)] = k[(size_t(t) * H + h) * D + i];
        vs[size_t(t * ts + h * hs + i)] = v[(size_t(t) * H + h) * D + i];
      }
  KvCache c(small_cfg("tq4", H, D));
  const int s = c.add_sequence();
  c.append(0, s, n, {ks.data(), DType::kF32, ts, hs}, {vs.data(), DType::kF32, ts, hs});
  expect_stored_bytes_match(c, 0, s, k, v);
}

TEST(KvCache, ContiguousStorageIsOnePagePerSequence) {
  KvCacheConfig cfg = small_cfg("tq3", 2, 64);
  cfg.storage = tq::KvStorage::kContiguous;
  cfg.max_seqs = 2;
  cfg.max_seq_len = 20;
  KvCache c(cfg);
  EXPECT_EQ(c.page_tokens(), 20);
  const int a = c.add_sequence(), b = c.add_sequence();
  EXPECT_THROW(c.add_sequence(), tq::Error);
  const auto k = tqtest::randn(20 * 128, 3), v = tqtest::randn(20 * 128, 4);
  c.append(0, a, 12, {k.data()}, {v.data()});
  c.append(0, a, 8, {&k[12 * 128]}, {&v[12 * 128]});
  EXPECT_EQ(c.seq_view(0, a).n_pages, 1);
  expect_stored_bytes_match(c, 0, a, k, v);
  try {
    c.append(0, a, 1, {k.data()}, {v.data()});
    FAIL();
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kOutOfMemory);
  }
  EXPECT_EQ(c.seq_len(0, a), 20);
  c.append(1, b, 20, {k.data()}, {v.data()});
  expect_stored_bytes_match(c, 1, b, k, v);
}

TEST(KvCache, PagesAreFreedAndReusedAcrossSequences) {
  KvCache c(small_cfg("tq3", 1, 32, 4, 6));
  const auto k = tqtest::randn(24 * 32, 5), v = tqtest::randn(24 * 32, 6);
  const int a = c.add_sequence();
  c.append(0, a, 13, {k.data()}, {v.data()});  // 4 pages
  c.append(1, a, 5, {k.data()}, {v.data()});   // layer 1 reuses the same page ids
  EXPECT_EQ(c.allocator().num_used(), 4);
  const int b = c.add_sequence();
  try {
    c.append(0, b, 9, {k.data()}, {v.data()});  // needs 3, only 2 free
    FAIL();
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kOutOfMemory);
  }
  EXPECT_EQ(c.seq_len(0, b), 0);
  EXPECT_EQ(c.allocator().num_used(), 4);
  c.remove_sequence(a);
  EXPECT_EQ(c.allocator().num_used(), 0);
  EXPECT_FALSE(c.has_sequence(a));
  EXPECT_THROW(c.seq_len(0, a), tq::Error);
  c.append(0, b, 24, {k.data()}, {v.data()});
  EXPECT_EQ(c.allocator().num_used(), 6);
  expect_stored_bytes_match(c, 0, b, k, v);
  const int a2 = c.add_sequence();
  EXPECT_EQ(a2, a) << "the freed slot is reused";
}

TEST(KvCache, MemoryAccounting) {
  KvCacheConfig cfg = small_cfg("k=tq4,v=tq3", 4, 128, 16, 10, 3);
  cfg.n_layers = 3;
  cfg.edge_layers = 1;
  cfg.edge_codec = "fp16";
  KvCache c(cfg);
  EXPECT_EQ(c.k_codec(0).spec().name(), "fp16");
  EXPECT_EQ(c.k_codec(1).spec().name(), tq::parse_codec("tq4").name());
  EXPECT_EQ(c.v_codec(1).spec().name(), tq::parse_codec("tq3").name());
  EXPECT_EQ(c.v_codec(2).spec().name(), "fp16");
  // Bytes per token: fp16 layers 4 heads x 2 x 256; the tq layer 4 x (66 + 50).
  EXPECT_EQ(c.bytes_per_token(0), size_t(4 * 512));
  EXPECT_EQ(c.bytes_per_token(1), size_t(4 * (66 + 50)));
  const tq::KvMemory m0 = c.memory();
  EXPECT_DOUBLE_EQ(m0.bytes_per_token, 2 * 4 * 512 + 4 * (66 + 50));
  EXPECT_EQ(m0.bytes_used, 0u);
  EXPECT_EQ(m0.pages_total, 10u);
  const int s = c.add_sequence();
  const auto x = tqtest::randn(40 * 4 * 128, 9);
  c.append(0, s, 40, {x.data()}, {x.data()});
  const tq::KvMemory m1 = c.memory();
  EXPECT_EQ(m1.pages_used, 3u) << "37 encoded tokens (3 in the window) need 3 pages of 16";
  size_t page_all = 0;
  for (int l = 0; l < 3; ++l)
    page_all += c.layer_view(l).k_layout.page_bytes() + c.layer_view(l).v_layout.page_bytes();
  EXPECT_EQ(m1.window_bytes, size_t(3 * 2 * 3 * 4 * 128 * 4));
  EXPECT_EQ(m1.bytes_used, 3 * page_all + m1.window_bytes);
  EXPECT_EQ(m1.bytes_reserved, 10 * page_all + m1.window_bytes);
  EXPECT_LE(m1.bytes_used, m1.bytes_reserved);
}

// Every bad call: the right status, a message, and the cache exactly as before.
TEST(KvCache, BadInputLeavesTheCacheUnchanged) {
  KvCache c(small_cfg("tq3", 2, 32, 4, 3, 2));
  const int s = c.add_sequence();
  const auto k = tqtest::randn(20 * 64, 1), v = tqtest::randn(20 * 64, 2);
  c.append(0, s, 5, {k.data()}, {v.data()});
  const auto before_k = tqtest::stored_tokens(c, 0, s, 1, false);
  const auto before_v = tqtest::stored_tokens(c, 0, s, 0, true);
  const size_t used = c.allocator().num_used();
  std::vector<float> nan_v(v.begin(), v.begin() + 3 * 64);
  nan_v[70] = NAN;
  std::vector<float> inf_k(k.begin(), k.begin() + 64);
  inf_k[3] = INFINITY;
  struct Case {
    const char* what;
    std::function<void()> call;
    tq::Status status;
  };
  const Case cases[] = {
      {"layer", [&] { c.append(2, s, 1, {k.data()}, {v.data()}); }, tq::Status::kOutOfRange},
      {"negative layer", [&] { c.append(-1, s, 1, {k.data()}, {v.data()}); }, tq::Status::kOutOfRange},
      {"sequence", [&] { c.append(0, 9, 1, {k.data()}, {v.data()}); }, tq::Status::kOutOfRange},
      {"count", [&] { c.append(0, s, -1, {k.data()}, {v.data()}); }, tq::Status::kInvalidArgument},
      {"null", [&] { c.append(0, s, 1, {nullptr}, {v.data()}); }, tq::Status::kInvalidArgument},
      {"dtype", [&] { c.append(0, s, 1, {k.data(), DType::kI32}, {v.data()}); }, tq::Status::kInvalidArgument},
      {"NaN in the encoded part", [&] { c.append(0, s, 3, {k.data()}, {nan_v.data()}); },
       tq::Status::kInvalidArgument},
      {"Inf in the window part", [&] { c.append(0, s, 1, {inf_k.data()}, {v.data()}); },
       tq::Status::kInvalidArgument},
      {"pool exhausted", [&] { c.append(0, s, 12, {k.data()}, {v.data()}); }, tq::Status::kOutOfMemory},
  };
  for (const auto& cs : cases) {
    try {
      cs.call();
      ADD_FAILURE() << cs.what << ": no error";
    } catch (const tq::Error& e) {
      EXPECT_EQ(e.status(), cs.status) << cs.what << ": " << e.what();
      EXPECT_GT(std::strlen(e.what()), 10u) << cs.what;
    }
    EXPECT_EQ(c.seq_len(0, s), 5) << cs.what;
    EXPECT_EQ(size_t(c.allocator().num_used()), used) << cs.what;
    EXPECT_EQ(tqtest::stored_tokens(c, 0, s, 1, false), before_k) << cs.what;
    EXPECT_EQ(tqtest::stored_tokens(c, 0, s, 0, true), before_v) << cs.what;
  }
  EXPECT_THROW(c.remove_sequence(7), tq::Error);
  // The cache still works after all that.
  c.append(0, s, 3, {k.data() + 5 * 64}, {v.data() + 5 * 64});
  EXPECT_EQ(c.seq_len(0, s), 8);
}

TEST(KvCache, BadConfigIsRejected) {
  auto bad = [](auto edit) {
    KvCacheConfig c = small_cfg("tq3");
    edit(c);
    EXPECT_THROW(KvCache{c}, tq::Error);
  };
  bad([](KvCacheConfig& c) { c.codec = "tq9"; });
  bad([](KvCacheConfig& c) { c.codec = "bogus"; });
  bad([](KvCacheConfig& c) { c.n_layers = 0; });
  bad([](KvCacheConfig& c) { c.n_kv_heads = 0; });
  bad([](KvCacheConfig& c) { c.head_dim = 0; });
  bad([](KvCacheConfig& c) { c.num_pages = 0; });
  bad([](KvCacheConfig& c) { c.page_tokens = 0; });
  bad([](KvCacheConfig& c) { c.window = -1; });
  bad([](KvCacheConfig& c) { c.layer_codecs = {"tq3"}; });  // 2 layers
  bad([](KvCacheConfig& c) { c.edge_layers = 1; c.edge_codec = "nope"; });
  bad([](KvCacheConfig& c) { c.storage = tq::KvStorage::kContiguous; });  // needs max_seqs / max_seq_len
  try {
    KvCacheConfig c = small_cfg("tq3");
    c.layer_codecs = {"tq3", "k=tq4,v=zz"};
    KvCache x(c);
    FAIL();
  } catch (const tq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 1"), std::string::npos) << e.what();
  }
}

}  // namespace
