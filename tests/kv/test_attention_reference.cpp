// The reference attention against an independent naive implementation on the original floats
// (fp32 cache: exact storage), and on constructed cases whose answer is known without arithmetic.
#include <gtest/gtest.h>

#include "kv_test_util.h"
#include "turboquant/attention.h"
#include "turboquant/error.h"

namespace {

using tq::AttendQuery;
using tq::KvCache;
using tq::KvCacheConfig;

KvCacheConfig cfg(const std::string& codec, int H, int D, int window = 0) {
  KvCacheConfig c;
  c.n_kv_heads = H;
  c.head_dim = D;
  c.codec = codec;
  c.page_tokens = 8;
  c.num_pages = 256;
  c.window = window;
  return c;
}

TEST(AttentionReference, MatchesNaiveAttentionOnAnExactCache) {
  // Two sequences of unequal length, GQA 3, causal block of 4 new tokens on the second.
  const int Hkv = 2, Hq = 6, D = 24;
  for (int window : {0, 6}) {
    KvCache c(cfg("fp32", Hkv, D, window));
    const int T[2] = {37, 19}, nq[2] = {1, 4};
    std::vector<float> k[2], v[2], q[2];
    int seqs[2];
    for (int b = 0; b < 2; ++b) {
      seqs[b] = c.add_sequence();
      k[b] = tqtest::randn(size_t(T[b]) * Hkv * D, 10 + b);
      v[b] = tqtest::randn(size_t(T[b]) * Hkv * D, 20 + b);
      q[b] = tqtest::randn(size_t(nq[b]) * Hq * D, 30 + b);
      c.append(0, seqs[b], T[b], {k[b].data()}, {v[b].data()});
    }
    std::vector<float> qall(q[0]);
    qall.insert(qall.end(), q[1].begin(), q[1].end());
    std::vector<float> out(qall.size(), -1.f);
    AttendQuery a;
    a.seqs = seqs;
    a.q_lens = nq;
    a.batch = 2;
    a.heads_q = Hq;
    a.q = qall.data();
    a.out = out.data();
    tq::attend_reference(c, 0, a);
    for (int b = 0, row = 0; b < 2; row += nq[b], ++b) {
      const auto want = tqtest::naive_attention(q[b], nq[b], Hq, k[b], v[b], T[b], Hkv, D, 1.0 / std::sqrt(D));
      EXPECT_LT(tqtest::rel_l2(&out[size_t(row) * Hq * D], want.data(), want.size()), 1e-6) << "seq " << b;
    }
  }
}

TEST(AttentionReference, ConstructedCases) {
  const int Hkv = 2, Hq = 4, D = 16, T = 10;
  KvCache c(cfg("fp32", Hkv, D));
  const int s = c.add_sequence();
  // Keys all equal -> uniform weights -> output = mean of V. KV head 1 has V = 100 + head offset so
  // that a wrong GQA mapping shows.
  std::vector<float> k(size_t(T) * Hkv * D, 0.5f), v(size_t(T) * Hkv * D);
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < Hkv; ++g)
      for (int i = 0; i < D; ++i) v[(size_t(t) * Hkv + g) * D + i] = float(t + 100 * g);
  c.append(0, s, T, {k.data()}, {v.data()});
  std::vector<float> q = tqtest::randn(size_t(Hq) * D, 1), out(q.size());
  AttendQuery a;
  a.seqs = &s;
  a.batch = 1;
  a.heads_q = Hq;
  a.q = q.data();
  a.out = out.data();
  tq::attend_reference(c, 0, a);
  for (int h = 0; h < Hq; ++h)
    for (int i = 0; i < D; ++i) EXPECT_NEAR(out[size_t(h) * D + i], 4.5 + 100 * (h / 2), 1e-4) << h;
  // Causal: with q_len = T, query i sees tokens 0..i: mean of V = i/2 (+100 g).
  std::vector<float> qs = tqtest::randn(size_t(T) * Hq * D, 2), outs(qs.size());
  const int ql = T;
  a.q_lens = &ql;
  a.q = qs.data();
  a.out = outs.data();
  tq::attend_reference(c, 0, a);
  for (int i = 0; i < T; ++i)
    for (int h = 0; h < Hq; ++h) EXPECT_NEAR(outs[(size_t(i) * Hq + h) * D], i / 2.0 + 100 * (h / 2), 1e-4);
}

TEST(AttentionReference, BadQueriesAreRejected) {
  KvCache c(cfg("tq3", 2, 32));
  const int s = c.add_sequence(), empty = c.add_sequence();
  const auto x = tqtest::randn(5 * 64, 3);
  c.append(0, s, 5, {x.data()}, {x.data()});
  std::vector<float> q(64 * 8), out(64 * 8, 7.f);
  auto query = [&](const int* seqs, const int* qls, int batch, int hq) {
    AttendQuery a;
    a.seqs = seqs;
    a.q_lens = qls;
    a.batch = batch;
    a.heads_q = hq;
    a.q = q.data();
    a.out = out.data();
    return a;
  };
  const int bad_seq = 5, six = 6, zero = 0;
  auto expect = [&](AttendQuery a, tq::Status st, const char* what) {
    try {
      tq::attend_reference(c, 0, a);
      ADD_FAILURE() << what;
    } catch (const tq::Error& e) {
      EXPECT_EQ(e.status(), st) << what << ": " << e.what();
    }
    for (float o : out) ASSERT_EQ(o, 7.f) << what << ": output written on failure";
  };
  expect(query(&bad_seq, nullptr, 1, 4), tq::Status::kOutOfRange, "unknown sequence");
  expect(query(&empty, nullptr, 1, 4), tq::Status::kInvalidArgument, "empty sequence");
  expect(query(&s, nullptr, 1, 3), tq::Status::kInvalidArgument, "Hq not a multiple of Hkv");
  expect(query(&s, &six, 1, 4), tq::Status::kInvalidArgument, "q_len > length");
  expect(query(&s, &zero, 1, 4), tq::Status::kInvalidArgument, "q_len 0");
  expect(query(&s, nullptr, 0, 4), tq::Status::kInvalidArgument, "batch 0");
  AttendQuery a = query(&s, nullptr, 1, 4);
  a.q_dtype = tq::DType::kF64;
  expect(a, tq::Status::kInvalidArgument, "q dtype");
  a = query(&s, nullptr, 1, 4);
  a.scale = NAN;
  expect(a, tq::Status::kInvalidArgument, "NaN scale");
  try {
    tq::attend_reference(c, 3, query(&s, nullptr, 1, 4));
    ADD_FAILURE();
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kOutOfRange);
  }
}

}  // namespace
