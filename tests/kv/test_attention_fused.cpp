// The fused engine (SIMD + threads + split-KV) against the reference, on fresh random inputs,
// every codec and the odd shapes: T = 1, 7, 113, 1000, 4097; batch 3 with unequal lengths; GQA
// ratios 1, 4, 7; head dims that are not powers of two; windows; causal blocks of new tokens.
//
// Tolerance: both sides read the same stored bytes; the reference decodes and accumulates in
// double, the engine works in float32 (rotation of q instead of inverse rotation of every key,
// sums over D <= 256 coordinates and T <= 4097 tokens, a vectorized exp with ~2 ulp). Float32
// round-off of such sums is ~1e-6 relative; 2e-5 leaves a margin of ~10x and still catches a
// wrong token, mask, scale or permutation (those give errors of order 1e-2 and more).
#include <gtest/gtest.h>

#include <numeric>
#include <thread>

#ifdef TQ_HAVE_HWY
#include <hwy/targets.h>
#endif

#include "kv/attn_alt_kernels.h"
#include "kv/attn_int8.h"
#include "kv/attn_kernels.h"
#include "kv_test_util.h"
#include "turboquant/attention.h"
#include "turboquant/error.h"
#include "turboquant/half.h"

namespace {

using tq::AttendQuery;
using tq::AttentionOptions;
using tq::DType;
using tq::KvCache;
using tq::KvCacheConfig;

constexpr double kTolF32 = 2e-5;

// The comparisons at kTolF32 run the engine with fp32 scores; the int8 score path (default on
// VNNI + VBMI CPUs) has its own tests below.
AttentionOptions fp32_scores() {
  AttentionOptions o;
  o.int8_scores = false;
  o.bf16_values = false;
  return o;
}

struct Case {
  std::string codec = "tq3";
  int Hkv = 2, G = 4, D = 128, window = 0, page_tokens = 16;
  std::vector<int> lens{1, 113, 1000};
  std::vector<int> qlens{1, 1, 3};
  tq::KvStorage storage = tq::KvStorage::kPaged;
  uint64_t seed = 1;
};

struct Filled {
  std::unique_ptr<KvCache> cache;
  std::vector<int> seqs;
  std::vector<float> q;
  int rows = 0;
};

Filled fill(const Case& s) {
  KvCacheConfig c;
  c.n_kv_heads = s.Hkv;
  c.head_dim = s.D;
  c.codec = s.codec;
  c.window = s.window;
  c.storage = s.storage;
  int max_len = *std::max_element(s.lens.begin(), s.lens.end());
  c.page_tokens = s.page_tokens;
  c.num_pages = 0;
  for (int L : s.lens) c.num_pages += (L + s.page_tokens - 1) / s.page_tokens;
  c.max_seqs = int(s.lens.size());
  c.max_seq_len = max_len;
  Filled f;
  f.cache = std::make_unique<KvCache>(c);
  for (size_t b = 0; b < s.lens.size(); ++b) {
    const int id = f.cache->add_sequence();
    f.seqs.push_back(id);
    const int L = s.lens[b];
    // Keys with a non-zero mean direction and a scale that gives peaked softmax rows, values
    // with an offset: attention outputs are then far from zero and errors are not hidden.
    auto k = tqtest::randn(size_t(L) * s.Hkv * s.D, s.seed * 100 + b, 1.5f);
    auto v = tqtest::randn(size_t(L) * s.Hkv * s.D, s.seed * 200 + b);
    for (size_t i = 0; i < v.size(); ++i) v[i] += 0.5f * float(i % 7);
    // Append in uneven chunks so that page and window boundaries fall inside appends.
    for (int at = 0, step = 1; at < L; at += step, step = step * 3 % 37 + 1) {
      const int n = std::min(step, L - at);
      f.cache->append(0, id, n, {&k[size_t(at) * s.Hkv * s.D]}, {&v[size_t(at) * s.Hkv * s.D]});
    }
    f.rows += s.qlens[b];
  }
  f.q = tqtest::randn(size_t(f.rows) * s.Hkv * s.G * s.D, s.seed * 300, 1.5f);
  return f;
}

AttendQuery query(const Case& s, Filled& f, void* out, DType out_dt = DType::kF32) {
  AttendQuery a;
  a.seqs = f.seqs.data();
  a.q_lens = s.qlens.data();
  a.batch = int(f.seqs.size());
  a.heads_q = s.Hkv * s.G;
  a.q = f.q.data();
  a.out = out;
  a.out_dtype = out_dt;
  return a;
}

// The reference output of a filled cache.
std::vector<float> reference(const Case& s, Filled& f) {
  std::vector<float> ref(size_t(f.rows) * s.Hkv * s.G * s.D, NAN);
  tq::attend_reference(*f.cache, 0, query(s, f, ref.data()));
  return ref;
}

// Fused output vs a reference output: relative L2 error over all rows (inf if anything is not finite).
double fused_error(const Case& s, Filled& f, const std::vector<float>& ref, const AttentionOptions& o = fp32_scores()) {
  std::vector<float> got(ref.size(), NAN);
  tq::attend(*f.cache, 0, query(s, f, got.data()), o);
  for (float x : got)
    if (!std::isfinite(x)) return INFINITY;
  return tqtest::rel_l2(got.data(), ref.data(), ref.size());
}

double fused_vs_reference(const Case& s, const AttentionOptions& o = fp32_scores()) {
  Filled f = fill(s);
  return fused_error(s, f, reference(s, f), o);
}

TEST(AttentionFused, EveryCodecMatchesTheReference) {
  const char* codecs[] = {"fp32",  "fp16", "bf16", "tq1",   "tq2",         "tq3",          "tq4",
                          "tq5",   "tq8",  "tq2.5", "tq3.5", "tq2p",        "tq3p",         "tq4p",
                          "tq1p",  "tq3:norm=fp32", "k=tq4,v=tq3", "k=fp16,v=tq3", "k=tq3,v=fp32", "q4",
                          "q8",    "fp8",  "q4r",  "q8r",   "k=q8r,v=fp16", "k=fp16,v=q4r", "kivi2",
                          "k=q8,v=tq3p"};
  for (const char* c : codecs) {
    Case s;
    s.codec = c;
    const double e = fused_vs_reference(s);
    EXPECT_LT(e, kTolF32) << c;
    std::printf("  %-16s rel err %.2e  (SIMD target %s)\n", c, e, tq::kv::kernel_target());
  }
}

TEST(AttentionFused, OddShapes) {
  struct Shape { int D, Hkv, G; std::vector<int> lens, qlens; };
  const Shape shapes[] = {
      {128, 1, 7, {7}, {1}},                          // GQA 7, MQA
      {64, 3, 1, {4097, 1, 113}, {2, 1, 113}},        // MHA, long + single token + full causal block
      {100, 2, 4, {1000, 7, 64}, {1, 7, 5}},          // d not a power of two (dense rotation, code tails)
      {256, 2, 4, {113, 1000, 1}, {1, 2, 1}},
      {48, 1, 4, {300}, {9}},                          // d < 64: one group plus a 16-code tail
  };
  // q8r: rotated in the engine (query once, output once), Hadamard or dense (D = 100, 48).
  for (const char* c : {"tq3", "tq4", "tq2.5", "tq3p", "fp16", "k=tq4,v=fp32", "q8r"}) {
    for (const Shape& sh : shapes) {
      Case s;
      s.codec = c;
      s.D = sh.D;
      s.Hkv = sh.Hkv;
      s.G = sh.G;
      s.lens = sh.lens;
      s.qlens = sh.qlens;
      s.page_tokens = 32;
      EXPECT_LT(fused_vs_reference(s), kTolF32) << c << " D=" << sh.D << " Hkv=" << sh.Hkv << " G=" << sh.G;
    }
  }
}

TEST(AttentionFused, SplitsThreadsAndBlockSizesDoNotChangeTheResult) {
  Case s;
  s.lens = {4097, 1000, 7};
  s.qlens = {1, 4, 7};
  for (const char* c : {"tq3", "fp16"}) {
    s.codec = c;
    Filled f = fill(s);
    const auto ref = reference(s, f);
    for (int threads : {1, 2, 3})
      for (int splits : {0, 1, 2, 7, 100})
        for (int bt : {1, 17, 64, 256}) {
          if (bt == 1 && splits > 2) continue;  // slow and adds nothing
          AttentionOptions o = fp32_scores();
          o.threads = threads;
          o.kv_splits = splits;
          o.block_tokens = bt;
          EXPECT_LT(fused_error(s, f, ref, o), kTolF32)
              << c << " threads " << threads << " splits " << splits << " block " << bt;
        }
  }
}

// The kernels of the other SIMD targets this CPU can run (e.g. AVX2, SSE4 on an AVX-512 machine:
// the portable code paths), forced through Highway's target mock.
TEST(AttentionFused, OtherSimdTargetsMatchTheReference) {
#ifndef TQ_HAVE_HWY
  GTEST_SKIP() << "built without Highway: the scalar kernels are the only target";
#else
  const int64_t all = hwy::SupportedTargets();
  int tested = 0;
  for (int64_t target : {int64_t(HWY_AVX2), int64_t(HWY_SSE4), int64_t(HWY_EMU128), int64_t(HWY_SCALAR)}) {
    if (!(all & target) || !(HWY_TARGETS & target)) continue;
    hwy::SetSupportedTargetsForTest(target);
    for (const char* c : {"tq3", "tq4", "tq2.5", "tq3p", "fp16", "bf16"}) {
      Case s;
      s.codec = c;
      s.D = 100;
      s.lens = {7, 300};
      s.qlens = {1, 2};
      EXPECT_LT(fused_vs_reference(s), kTolF32) << c << " on " << hwy::TargetName(target);
    }
    std::printf("  checked target %s (%s)\n", hwy::TargetName(target), tq::kv::kernel_target());
    ++tested;
  }
  hwy::SetSupportedTargetsForTest(0);
  if (tested == 0) GTEST_SKIP() << "no other SIMD target is available on this CPU";
#endif
}

TEST(AttentionFused, WindowAndContiguousStorage) {
  for (const char* c : {"tq3", "k=tq4,v=tq3p", "fp16", "q4"}) {
    for (int window : {1, 5, 64, 2000}) {
      Case s;
      s.codec = c;
      s.window = window;
      s.lens = {1000, 7, 113};
      s.qlens = {3, 7, 1};
      EXPECT_LT(fused_vs_reference(s), kTolF32) << c << " window " << window;
    }
    Case s;
    s.codec = c;
    s.storage = tq::KvStorage::kContiguous;
    s.window = 16;
    EXPECT_LT(fused_vs_reference(s), kTolF32) << c << " contiguous";
  }
}

TEST(AttentionFused, HalfPrecisionQueriesAndOutputsAndStrides) {
  Case s;
  s.lens = {113, 50};
  s.qlens = {1, 2};
  Filled f = fill(s);
  const int Hq = s.Hkv * s.G, D = s.D;
  const size_t n = size_t(f.rows) * Hq * D;
  std::vector<float> ref(n);
  tq::attend_reference(*f.cache, 0, query(s, f, ref.data()));
  for (DType dt : {DType::kF16, DType::kBF16}) {
    // Queries given in half precision: the reference gets the same rounded values as float32.
    std::vector<uint16_t> q16(f.q.size());
    std::vector<float> qr(f.q.size());
    for (size_t i = 0; i < q16.size(); ++i) {
      q16[i] = dt == DType::kF16 ? tq::float_to_half(f.q[i]) : tq::float_to_bf16(f.q[i]);
      qr[i] = dt == DType::kF16 ? tq::half_to_float(q16[i]) : tq::bf16_to_float(q16[i]);
    }
    std::vector<float> want(n), got(n);
    AttendQuery a = query(s, f, want.data());
    a.q = qr.data();
    tq::attend_reference(*f.cache, 0, a);
    std::vector<uint16_t> o16(n);
    a.q = q16.data();
    a.q_dtype = dt;
    a.out = o16.data();
    a.out_dtype = dt;
    tq::attend(*f.cache, 0, a, fp32_scores());
    for (size_t i = 0; i < n; ++i) got[i] = dt == DType::kF16 ? tq::half_to_float(o16[i]) : tq::bf16_to_float(o16[i]);
    // Output rounding: half 2^-11, bfloat16 2^-8 relative per element.
    EXPECT_LT(tqtest::rel_l2(got.data(), want.data(), n), dt == DType::kF16 ? 1e-3 : 8e-3) << tq::dtype_name(dt);
  }
  // Strided q and out: heads and rows with gaps; the gaps are left untouched.
  const int64_t hs = D + 3, ts = Hq * hs + 11;
  std::vector<float> qs(size_t(f.rows) * ts, 0.f), os(size_t(f.rows) * ts, -5.f);
  for (int r = 0; r < f.rows; ++r)
    for (int h = 0; h < Hq; ++h)
      for (int i = 0; i < D; ++i) qs[size_t(r * ts + h * hs + i)] = f.q[(size_t(r) * Hq + h) * D + i];
  AttendQuery a = query(s, f, os.data());
  a.q = qs.data();
  a.q_token_stride = a.out_token_stride = ts;
  a.q_head_stride = a.out_head_stride = hs;
  tq::attend(*f.cache, 0, a, fp32_scores());
  std::vector<float> dense(n);
  for (int r = 0; r < f.rows; ++r)
    for (int h = 0; h < Hq; ++h)
      for (int i = 0; i < ts; ++i) {
        const int64_t at = r * ts + i;
        const bool inside = i < Hq * hs && (i % hs) < D;
        if (inside) dense[(size_t(r) * Hq + i / hs) * D + i % hs] = os[size_t(at)];
        else ASSERT_EQ(os[size_t(at)], -5.f) << "gap written at row " << r << " offset " << i;
      }
  EXPECT_LT(tqtest::rel_l2(dense.data(), ref.data(), n), kTolF32);
}

TEST(AttentionFused, BadInputFailsBeforeWritingAnything) {
  Case s;
  s.lens = {20};
  s.qlens = {1};
  Filled f = fill(s);
  std::vector<float> out(size_t(s.Hkv * s.G * s.D), 3.f);
  AttendQuery a = query(s, f, out.data());
  const int bad = 4, too_long = 21;
  AttentionOptions o;
  auto expect = [&](AttendQuery q, AttentionOptions opt, tq::Status st, const char* what) {
    try {
      tq::attend(*f.cache, 0, q, opt);
      ADD_FAILURE() << what;
    } catch (const tq::Error& e) {
      EXPECT_EQ(e.status(), st) << what << ": " << e.what();
    }
    for (float x : out) ASSERT_EQ(x, 3.f) << what;
  };
  AttendQuery q = a;
  q.seqs = &bad;
  expect(q, o, tq::Status::kOutOfRange, "unknown sequence");
  q = a;
  q.q_lens = &too_long;
  expect(q, o, tq::Status::kInvalidArgument, "q_len beyond the sequence");
  q = a;
  q.heads_q = 7;
  expect(q, o, tq::Status::kInvalidArgument, "Hq not a multiple of Hkv");
  q = a;
  q.out_dtype = DType::kI64;
  expect(q, o, tq::Status::kInvalidArgument, "output dtype");
  AttentionOptions ob;
  ob.block_tokens = 0;
  expect(a, ob, tq::Status::kInvalidArgument, "block size");
  try {
    tq::attend(*f.cache, 1, a);
    ADD_FAILURE();
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kOutOfRange);
  }
}

// The code kernels alone, against a scalar sum over unpack_code_ref, for every bit width, tails,
// row counts (the tile loop) and token runs split into uneven segments (pages), in kernel order.
TEST(AttentionKernels, CodeDotsAndAccumulationsMatchScalarSums) {
  std::mt19937_64 g(5);
  for (int bits = 1; bits <= 8; ++bits)
    for (int m : {32, 128, 100, 16, 96, 257}) {
      const std::vector<int> order = tq::kv::kernel_order(bits, m);
      std::vector<int> sorted = order;
      std::sort(sorted.begin(), sorted.end());
      for (int j = 0; j < m; ++j) ASSERT_EQ(sorted[size_t(j)], j) << "kernel order is a permutation";
      const int n = 37, L = 1 << bits;
      const size_t off = 3, stride = tq::packed_bytes(uint32_t(m), uint32_t(bits)) + off + 2;
      // Tokens in 4 segments of 5, 16, 1, 15 tokens at scattered places of one buffer.
      const int counts[4] = {5, 16, 1, 15};
      const size_t starts[4] = {40, 3, 25, 60};  // in token slots
      std::vector<uint8_t> buf(stride * 80 + 64), raw(static_cast<size_t>(m));
      std::vector<const uint8_t*> base;
      std::vector<const uint8_t*> tok;  // token t's codes
      for (int sg = 0; sg < 4; ++sg) {
        base.push_back(&buf[starts[sg] * stride]);
        for (int k = 0; k < counts[sg]; ++k) tok.push_back(&buf[(starts[sg] + size_t(k)) * stride + off]);
      }
      for (const uint8_t* p : tok) {
        for (auto& c : raw) c = uint8_t(g() % uint64_t(L));
        tq::pack_codes_ref(raw.data(), uint32_t(m), bits, const_cast<uint8_t*>(p));
      }
      const tq::kv::TokenRun tr{base.data(), counts, 4, stride, n};
      const auto table = tqtest::randn(size_t(L), uint64_t(bits * 1000 + m));
      for (int R : {1, 2, 3, 4, 7}) {
        const size_t ld = size_t(m) + 5, lds = size_t(n) + 3;
        const auto q = tqtest::randn(size_t(R) * ld, 7);
        std::vector<float> s(size_t(R) * lds), want(size_t(R) * lds, 0.f);
        tq::kv::dot_codes(bits, m, tr, off, table.data(), q.data(), ld, R, s.data(), lds);
        const auto w = tqtest::randn(size_t(R) * lds, 8);
        std::vector<float> acc(size_t(R) * ld, 0.5f), acc_want(acc);
        tq::kv::acc_codes(bits, m, tr, off, table.data(), w.data(), lds, R, acc.data(), ld);
        for (int r = 0; r < R; ++r)
          for (int t = 0; t < n; ++t) {
            double d = 0;
            for (int j = 0; j < m; ++j) {
              const float x = table[tq::unpack_code_ref(tok[size_t(t)], uint32_t(m), bits, uint32_t(order[size_t(j)]))];
              d += double(q[r * ld + j]) * x;
              acc_want[r * ld + j] += w[r * lds + t] * x;
            }
            want[r * lds + t] = float(d);
            s[r * lds + size_t(n)] = want[r * lds + size_t(n)];  // padding columns are not outputs
            s[r * lds + size_t(n) + 1] = want[r * lds + size_t(n) + 1];
            s[r * lds + size_t(n) + 2] = want[r * lds + size_t(n) + 2];
          }
        EXPECT_LT(tqtest::rel_l2(s.data(), want.data(), s.size()), 1e-6) << bits << " bits, m " << m << ", R " << R;
        EXPECT_LT(tqtest::rel_l2(acc.data(), acc_want.data(), acc.size()), 1e-6) << bits << " bits, m " << m;
      }
    }
}

// The lookup-table alternatives (measured, not used by the engine) compute the same sums.
TEST(AttentionKernels, LookupTableAlternativesMatch) {
  std::mt19937_64 g(9);
  for (int bits = 1; bits <= 4; ++bits)
    for (int m : {32, 128}) {
      const int n = 21, L = 1 << bits, R = 4;
      const size_t stride = tq::packed_bytes(uint32_t(m), uint32_t(bits));
      std::vector<uint8_t> buf(stride * n + 64), raw(static_cast<size_t>(m));
      for (int t = 0; t < n; ++t) {
        for (auto& c : raw) c = uint8_t(g() % uint64_t(L));
        tq::pack_codes_ref(raw.data(), uint32_t(m), bits, &buf[size_t(t) * stride]);
      }
      const tq::kv::OneSegment seg{buf.data(), n, stride};
      const auto table = tqtest::randn(size_t(L), 11);
      const auto q = tqtest::randn(size_t(R) * m, 12), w = tqtest::randn(size_t(R) * n, 13);
      std::vector<float> a(size_t(R) * n), b(size_t(R) * n);
      tq::kv::dot_codes(bits, m, seg.run(), 0, table.data(), q.data(), size_t(m), R, a.data(), size_t(n));
      if (tq::kv::lut_gather_supported(bits, m)) {
        tq::kv::dot_codes_lut_gather(bits, m, seg.run(), 0, table.data(), q.data(), size_t(m), R, b.data(), size_t(n));
        EXPECT_LT(tqtest::rel_l2(b.data(), a.data(), a.size()), 1e-6) << bits << " bits, m " << m;
      }
      std::vector<float> acc(size_t(R) * m, 0.25f), want(acc);
      tq::kv::acc_codes_histogram(bits, m, seg.run(), 0, table.data(), w.data(), size_t(n), R, acc.data(), size_t(m));
      for (int r = 0; r < R; ++r)
        for (int t = 0; t < n; ++t)
          for (int j = 0; j < m; ++j)
            want[size_t(r) * m + j] += w[size_t(r) * n + t] *
                                       table[tq::unpack_code_ref(&buf[size_t(t) * stride], uint32_t(m), bits, uint32_t(j))];
      EXPECT_LT(tqtest::rel_l2(acc.data(), want.data(), acc.size()), 1e-6) << bits << " bits, m " << m;
    }
}

}  // namespace

// ---- int8 scores (attn_int8.h) -------------------------------------------------------------------

// The int8 kernel alone against exact integer sums of the same quantized q and centroid bytes:
// every bit width it takes, m over several 64-byte load chunks, odd token counts (pairs with a
// lone token), runs split into pages, row tiles 4/2/1.
TEST(AttentionInt8, KernelMatchesIntegerSums) {
  if (!tq::kv::int8_scores_available()) GTEST_SKIP() << "no AVX-512 VNNI + VBMI on this CPU";
  std::mt19937_64 g(11);
  for (int bits = 1; bits <= 4; ++bits)
    for (int m : {32, 64, 96, 128, 256, 544})
      for (int n : {1, 7, 37}) {
        const int L = 1 << bits;
        const size_t off = 3, stride = tq::packed_bytes(uint32_t(m), uint32_t(bits)) + off + 2;
        std::vector<int> counts;
        for (int left = n, c = 5; left > 0; c = c * 7 % 17 + 1) {
          counts.push_back(std::min(c, left));
          left -= counts.back();
        }
        std::vector<uint8_t> buf(stride * size_t(2 * n + 8) + 64), raw(static_cast<size_t>(m));
        std::vector<const uint8_t*> base, tok;
        size_t slot = 1;
        for (int c : counts) {  // segments in reverse-ish order with gaps
          base.push_back(&buf[slot * stride]);
          for (int k = 0; k < c; ++k) tok.push_back(&buf[(slot + size_t(k)) * stride + off]);
          slot += size_t(c) + 1;
        }
        std::vector<std::vector<uint8_t>> codes;
        for (const uint8_t* p : tok) {
          for (auto& c : raw) c = uint8_t(g() % uint64_t(L));
          tq::pack_codes_ref(raw.data(), uint32_t(m), bits, const_cast<uint8_t*>(p));
          codes.push_back(raw);
        }
        const tq::kv::TokenRun tr{base.data(), counts.data(), int(counts.size()), stride, n};
        const auto table = tqtest::randn(size_t(L), uint64_t(bits * 100 + m));
        const tq::kv::Int8Table tab = tq::kv::make_int8_table(bits, table.data());
        for (int R : {1, 3, 4, 7}) {
          const auto q = tqtest::randn(size_t(R) * m, uint64_t(R + 17 * m));
          tq::kv::Int8Query q8;
          tq::kv::quantize_query(q.data(), size_t(m), R, m, q8);
          const size_t lds = size_t(n) + 3;
          std::vector<float> s(size_t(R) * lds, -7.f);
          tq::kv::dot_codes_i8(bits, m, tr, off, tab, q8, s.data(), lds);
          for (int r = 0; r < R; ++r) {
            for (int t = 0; t < n; ++t) {
              int64_t d = 0;
              for (int j = 0; j < m; ++j)
                d += int64_t(q8.q8[size_t(r) * m + j]) * (int(tab.lut[codes[size_t(t)][size_t(j)]]) - 128);
              const float want = float(d) * (q8.qs[size_t(r)] * tab.cs);
              ASSERT_NEAR(s[r * lds + t], want, 1e-6f * std::max(1.f, std::fabs(want)))
                  << bits << " bits, m " << m << ", n " << n << ", R " << R << ", row " << r << ", token " << t;
            }
            for (size_t t = size_t(n); t < lds; ++t) ASSERT_EQ(s[r * lds + t], -7.f) << "wrote past the tokens";
          }
          // The quantization itself: centroid bytes within half a step, q within half a step.
          for (int i = 0; i < L; ++i) EXPECT_LE(std::fabs((int(tab.lut[i]) - 128) * tab.cs - table[size_t(i)]), 0.5f * tab.cs + 1e-7f);
          for (int r = 0; r < R; ++r)
            for (int j = 0; j < m; ++j)
              EXPECT_LE(std::fabs(q8.q8[size_t(r) * m + j] * q8.qs[size_t(r)] - q[size_t(r) * m + j]), 0.5f * q8.qs[size_t(r)] * 1.0001f);
        }
      }
}

// The bf16 value kernel against double sums of the bf16-rounded centroids and weights (fp32
// accumulation: ~1e-6 relative), same shapes as the int8 kernel test; accumulators start non-zero.
TEST(AttentionInt8, Bf16ValueKernelMatchesRoundedSums) {
  if (!tq::kv::bf16_values_available()) GTEST_SKIP() << "no AVX-512 BF16 + VBMI on this CPU";
  std::mt19937_64 g(13);
  for (int bits = 1; bits <= 4; ++bits)
    for (int m : {32, 64, 96, 128, 256, 544})
      for (int n : {1, 7, 37}) {
        const int L = 1 << bits;
        const size_t off = 5, stride = tq::packed_bytes(uint32_t(m), uint32_t(bits)) + off + 1;
        std::vector<int> counts;
        for (int left = n, c = 3; left > 0; c = c * 5 % 13 + 1) {
          counts.push_back(std::min(c, left));
          left -= counts.back();
        }
        std::vector<uint8_t> buf(stride * size_t(2 * n + 8) + 64), raw(static_cast<size_t>(m));
        std::vector<const uint8_t*> base, tok;
        size_t slot = 2;
        for (int c : counts) {
          base.push_back(&buf[slot * stride]);
          for (int k = 0; k < c; ++k) tok.push_back(&buf[(slot + size_t(k)) * stride + off]);
          slot += size_t(c) + 1;
        }
        std::vector<std::vector<uint8_t>> codes;
        for (const uint8_t* p : tok) {
          for (auto& c : raw) c = uint8_t(g() % uint64_t(L));
          tq::pack_codes_ref(raw.data(), uint32_t(m), bits, const_cast<uint8_t*>(p));
          codes.push_back(raw);
        }
        const tq::kv::TokenRun tr{base.data(), counts.data(), int(counts.size()), stride, n};
        const auto table = tqtest::randn(size_t(L), uint64_t(bits * 100 + m + 1));
        const tq::kv::Bf16Table tab = tq::kv::make_bf16_table(bits, table.data());
        for (int R : {1, 3, 4, 7}) {
          const size_t ldw = size_t(n) + 2, lda = size_t(m) + 3;
          const auto w = tqtest::randn(size_t(R) * ldw, uint64_t(R + 31 * m));
          std::vector<float> acc(size_t(R) * lda, 0.25f);
          std::vector<double> want(acc.begin(), acc.end());
          tq::kv::acc_codes_bf16(bits, m, tr, off, tab, w.data(), ldw, R, acc.data(), lda);
          for (int r = 0; r < R; ++r)
            for (int t = 0; t < n; ++t) {
              const double wt = tq::bf16_to_float(tq::float_to_bf16(w[r * ldw + t]));
              for (int j = 0; j < m; ++j)
                want[r * lda + j] += wt * tq::bf16_to_float(tab.lut[codes[size_t(t)][size_t(j)]]);
            }
          for (size_t i = 0; i < acc.size(); ++i) {
            const bool col = i % lda < size_t(m);
            ASSERT_NEAR(acc[i], want[i], col ? 1e-5 * (1 + std::fabs(want[i])) : 0.0)
                << bits << " bits, m " << m << ", n " << n << ", R " << R << ", at " << i;
          }
        }
      }
}

// End to end with int8 scores: every codec and the odd shapes against the reference. The scores
// carry the rounding of q (half a step of max|q|/127 per coordinate) and of the centroids (half a
// step of max|c|/127): ~0.5% of the score spread, 2-4e-3 relative error of the outputs with these
// peaked rows (K scaled 1.5x): the codecs' own error is 10-30x larger (err_vs_exact of `tq bench
// decode`). The bf16 value path (also default) adds ~2^-9 relative per product.
constexpr double kTolI8 = 1.5e-2;

TEST(AttentionInt8, EveryCodecAndOddShapeMatchTheReferenceWithinTheRounding) {
  if (!tq::kv::int8_scores_available()) GTEST_SKIP() << "no AVX-512 VNNI + VBMI on this CPU";
  const AttentionOptions i8;
  for (const char* c : {"tq1", "tq2", "tq3", "tq4", "tq5", "tq2.5", "tq3.5", "tq3p", "tq1p", "tq3:norm=fp32",
                        "k=tq4,v=tq3", "k=fp16,v=tq3", "k=tq3,v=fp32", "fp16", "q8"}) {
    Case s;
    s.codec = c;
    const double e = fused_vs_reference(s, i8);
    EXPECT_LT(e, kTolI8) << c;
    std::printf("  %-16s int8 scores: rel err %.2e\n", c, e);
  }
  struct Shape { int D, Hkv, G; std::vector<int> lens, qlens; };
  const Shape shapes[] = {
      {128, 1, 7, {7}, {1}}, {64, 3, 1, {4097, 1, 113}, {2, 1, 113}}, {100, 2, 4, {1000, 7, 64}, {1, 7, 5}},
      {256, 2, 4, {113, 1000, 1}, {1, 2, 1}}, {48, 1, 4, {300}, {9}}, {96, 2, 4, {200}, {3}},
  };
  for (const char* c : {"tq3", "tq4", "tq2.5", "tq3p"})
    for (const Shape& sh : shapes) {
      Case s;
      s.codec = c;
      s.D = sh.D;
      s.Hkv = sh.Hkv;
      s.G = sh.G;
      s.lens = sh.lens;
      s.qlens = sh.qlens;
      s.page_tokens = 32;
      EXPECT_LT(fused_vs_reference(s, i8), kTolI8) << c << " D=" << sh.D << " Hkv=" << sh.Hkv << " G=" << sh.G;
    }
  Case s;
  s.lens = {4097, 1000, 7};
  s.qlens = {1, 4, 7};
  Filled f = fill(s);
  std::vector<float> first(size_t(f.rows) * s.Hkv * s.G * s.D, NAN);
  tq::attend(*f.cache, 0, query(s, f, first.data()), i8);
  for (int threads : {1, 2, 3})
    for (int splits : {0, 1, 7, 100})
      for (int bt : {17, 64, 256}) {
        AttentionOptions o;
        o.threads = threads;
        o.kv_splits = splits;
        o.block_tokens = bt;
        // Same int8 scores whatever the split; the bf16 weights p·norm are rounded after the
        // block's running max, which depends on the split: 2^-9 relative per weight.
        EXPECT_LT(fused_error(s, f, first, o), 1e-3) << " threads " << threads << " splits " << splits << " block " << bt;
      }
}

// attend() from several threads at once: the helper pool serves one call at a time, the others
// run on their callers (work_pool.h); every result must still match.
TEST(AttentionFused, ConcurrentCallsGiveTheSameResults) {
  Case s;
  s.lens = {1000, 113, 7};
  s.qlens = {1, 2, 1};
  Filled f = fill(s);
  const auto ref = reference(s, f);
  std::vector<std::vector<float>> outs(4, std::vector<float>(ref.size(), NAN));
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&, i] {
      AttentionOptions o = fp32_scores();
      o.threads = 2;
      o.kv_splits = 3;
      for (int rep = 0; rep < 5; ++rep) tq::attend(*f.cache, 0, query(s, f, outs[size_t(i)].data()), o);
    });
  for (auto& t : ts) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_LT(tqtest::rel_l2(outs[size_t(i)].data(), ref.data(), ref.size()), kTolF32) << i;
}
