// tq::eval against theory and against hand-checkable cases: the Lloyd-Max distortion and its
// shrinkage (centroid condition), QJL unbiasedness, exactness with fp32, keys-only / values-only
// separation, the KIVI window's bit accounting from its definition, causal masking and the GQA
// head mapping on constructed data, the Pareto front.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "turboquant/codebook.h"
#include "turboquant/error.h"
#include "turboquant/eval.h"
#include "turboquant/rotation.h"

namespace {

using tq::eval::AttnShape;
using tq::eval::CodecChoice;

uint64_t fresh_seed() {
  static const uint64_t s = std::random_device{}();
  return s;
}

std::vector<float> unit_vectors(size_t n, int d, uint64_t seed) {
  tq::Rng r(seed);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i) {
    double s = 0;
    for (int j = 0; j < d; ++j) { const double v = r.normal(); x[i * d + j] = float(v); s += v * v; }
    for (int j = 0; j < d; ++j) x[i * d + j] = float(x[i * d + j] / std::sqrt(s));
  }
  return x;
}

std::vector<float> gaussian(size_t n, uint64_t seed, double scale = 1.0) {
  tq::Rng r(seed);
  std::vector<float> x(n);
  for (auto& v : x) v = float(scale * r.normal());
  return x;
}

CodecChoice choice(const std::string& s) { return tq::eval::parse_codec_list(s).at(0); }

TEST(CodecList, ParsesPairsAndRejectsBadItems) {
  const auto c = tq::eval::parse_codec_list("fp16, q8r,k=tq4,v=tq3,k4v3,kivi2");
  ASSERT_EQ(c.size(), 5u);
  EXPECT_EQ(c[0].label, "fp16");
  EXPECT_EQ(c[1].k.id, tq::CodecId::kQ8r);
  EXPECT_EQ(c[2].label, "k=tq4,v=tq3");
  EXPECT_EQ(c[2].k.bits, 4);
  EXPECT_EQ(c[2].v.bits, 3);
  EXPECT_EQ(c[3].label, "k=tq4,v=tq3");
  EXPECT_EQ(c[4].k.id, tq::CodecId::kKivi2);
  for (const char* bad : {"", "tq3,,q4", "k=tq4", "k=tq4,q8", "v=tq3", "foo", "tq3,"})
    EXPECT_THROW(tq::eval::parse_codec_list(bad), tq::Error) << bad;
}

TEST(EvalVectors, TurboQuantOnTheLloydMaxOptimumWithItsShrinkage) {
  // Random unit vectors: rel. MSE = the Beta(d) optimum (the paper's D_mse). The centroid condition
  // E[x | x̂] = x̂ gives E<x, x̂> = E||x̂||^2 = 1 - D, so inner products shrink by exactly D:
  // ip_bias = -D. The prod codec's QJL stage removes the bias.
  const int d = 128;
  const size_t n = 6000;
  const auto x = unit_vectors(n, d, fresh_seed());
  const auto q = unit_vectors(500, d, fresh_seed() + 1);
  for (int b = 1; b <= 4; ++b) {
    const auto r = tq::eval::eval_vectors(x.data(), n, d, tq::parse_codec("tq" + std::to_string(b)), q.data(), 500, 7);
    EXPECT_NEAR(r.rel_mse / tq::Codebook::get(d, b).distortion(), 1.0, 0.02) << b;
    EXPECT_DOUBLE_EQ(r.beta_optimum, tq::Codebook::get(d, b).distortion());
    // Sampling: the residual x̂ - (1-D)x has energy D(1-D), so the slope estimate over n pairs has a
    // standard deviation of sqrt(D(1-D)/n); allow 4 of them.
    const double D = r.rel_mse;
    EXPECT_NEAR(r.ip_bias_real, -D, 4 * std::sqrt(D * (1 - D) / n)) << b;
    EXPECT_DOUBLE_EQ(r.bits_per_value, b + 16.0 / d);  // codes + the fp16 norm
    // Random directions: E<u, x - x̂>^2 / E<u, x>^2 = ||x - x̂||^2 / ||x||^2 for isotropic u.
    EXPECT_NEAR(r.ip_rel_err_random / r.rel_mse, 1.0, 0.1) << b;
  }
  for (int b = 2; b <= 4; ++b) {
    const auto r = tq::eval::eval_vectors(x.data(), n, d, tq::parse_codec("tq" + std::to_string(b) + "p"), q.data(), 500, 7);
    EXPECT_LT(std::fabs(r.ip_bias_real), 4 * std::sqrt(r.rel_mse / n)) << "prod b=" << b;  // unbiased (4 sd)
    EXPECT_GT(r.rel_mse, 0.5 * tq::Codebook::get(d, b).distortion());  // and not by being exact
    EXPECT_LT(r.beta_optimum, 0);  // no Beta optimum for prod
  }
}

TEST(EvalVectors, Fp16WithinHalfUlpAndBitsCounted) {
  const int d = 100;
  const size_t n = 2000;
  const auto x = gaussian(n * d, fresh_seed(), 3.0);
  const auto r = tq::eval::eval_vectors(x.data(), n, d, tq::parse_codec("fp16"), nullptr, 0, 3);
  EXPECT_LE(r.rel_mse, std::ldexp(1.0, -22));  // |err| <= 2^-11 |x| per normal fp16 value
  EXPECT_GT(r.rel_mse, 0.0);
  EXPECT_EQ(r.bits_per_value, 16.0);
  const auto q4 = tq::eval::eval_vectors(x.data(), n, d, tq::parse_codec("q4"), nullptr, 0, 3);
  EXPECT_DOUBLE_EQ(q4.bits_per_value, 8.0 * (50 + 2 * 4) / d);
}

struct Kv {
  std::vector<float> q, k, v;
  AttnShape s;
};

Kv random_kv(int B, int Hq, int Hkv, int Tq, int T, int D, uint64_t seed) {
  Kv o;
  o.s = {B, Hq, Hkv, Tq, T, D};
  o.q = gaussian(size_t(B) * Hq * Tq * D, seed, 1.0);
  o.k = gaussian(size_t(B) * Hkv * T * D, seed + 1, 1.0);
  o.v = gaussian(size_t(B) * Hkv * T * D, seed + 2, 1.0);
  return o;
}

tq::eval::AttnResult attn(const Kv& kv, const std::string& c, tq::eval::AttnOptions ko = {}) {
  return tq::eval::eval_attention(kv.q.data(), kv.k.data(), kv.v.data(), kv.s, choice(c), ko, 5);
}

TEST(EvalAttention, Fp32IsExactAndErrorFallsAsBitsRise) {
  const auto kv = random_kv(2, 4, 2, 16, 64, 64, fresh_seed());
  const auto r = attn(kv, "fp32");
  EXPECT_LT(r.kld, 1e-12);
  EXPECT_LT(r.attn_rel_l2, 1e-6);
  EXPECT_EQ(r.top1_agree, 1.0);
  EXPECT_EQ(r.top8_agree, 1.0);
  EXPECT_EQ(r.k_rel_mse, 0.0);
  EXPECT_EQ(r.n_queries, size_t(2 * 4 * 16));
  double prev_kld = INFINITY, prev_l2 = INFINITY;
  for (const char* c : {"tq2", "tq3", "tq4", "q8"}) {
    const auto e = attn(kv, c);
    EXPECT_LT(e.kld, prev_kld) << c;
    EXPECT_LT(e.attn_rel_l2, prev_l2) << c;
    prev_kld = e.kld;
    prev_l2 = e.attn_rel_l2;
  }
}

TEST(EvalAttention, KeysOnlyAndValuesOnly) {
  // The attention distribution depends on K only: with exact keys KLD is 0 and top-k agree exactly,
  // while quantized values still move the output; with exact values V's error is 0.
  const auto kv = random_kv(1, 4, 4, 8, 48, 32, fresh_seed());
  const auto vq = attn(kv, "k=fp32,v=tq2");
  EXPECT_EQ(vq.kld, 0.0);
  EXPECT_EQ(vq.top1_agree, 1.0);
  EXPECT_EQ(vq.score_rel_err, 0.0);
  EXPECT_GT(vq.attn_rel_l2, 0.01);
  EXPECT_GT(vq.v_rel_mse, 0.05);
  const auto kq = attn(kv, "k=tq2,v=fp32");
  EXPECT_GT(kq.kld, 0.0);
  EXPECT_EQ(kq.v_rel_mse, 0.0);
  EXPECT_DOUBLE_EQ(kq.k_bits, 2.0 + 16.0 / 32);
  EXPECT_DOUBLE_EQ(kq.v_bits, 32.0);
  EXPECT_DOUBLE_EQ(kq.bits_per_value, 0.5 * (kq.k_bits + kq.v_bits));
}

TEST(EvalAttention, KiviWindowBitsFromTheDefinition) {
  // T=256, G=32, R=32, D=64: the quantized prefix at the last position is floor((256-32)/32)*32 = 224
  // tokens; keys: 2 bits + (fp16 scale + zero) per channel per group of 32 = 3 bits; values: 2 bits
  // + 4 bytes per 32 channels = 3 bits; the 32 window tokens cost 16 bits each.
  const auto kv = random_kv(1, 2, 1, 4, 256, 64, fresh_seed());
  const auto r = attn(kv, "kivi2");
  EXPECT_DOUBLE_EQ(r.k_bits, (224.0 * 3 + 32.0 * 16) / 256);
  EXPECT_DOUBLE_EQ(r.v_bits, (224.0 * 3 + 32.0 * 16) / 256);
  EXPECT_NE(r.k_method.find("per-channel"), std::string::npos);
  // A window covering everything stores fp16 only: fp16-level error, 16 bits.
  tq::eval::AttnOptions all{32, 256, 0, 0};
  const auto w = attn(kv, "kivi2", all);
  EXPECT_DOUBLE_EQ(w.bits_per_value, 16.0);
  EXPECT_LT(w.k_rel_mse, std::ldexp(1.0, -22));
  // No window: everything quantized that forms whole groups.
  tq::eval::AttnOptions none{32, 0, 0, 0};
  const auto z = attn(kv, "kivi2", none);
  EXPECT_DOUBLE_EQ(z.k_bits, 3.0);
  EXPECT_GT(z.kld, r.kld);  // the window only removes error
}

TEST(EvalAttention, CenteringIsExactForSoftmax) {
  // Adding one vector c to every key changes no attention weight (each query's scores shift by q·c).
  // With centering over all tokens the codec then sees the same input (up to float rounding), so
  // every attention metric must match the unshifted run; without centering the shift, which holds
  // most of the key energy, costs accuracy. The fp32 mean costs 32 D bits per (sequence, head).
  auto kv = random_kv(2, 4, 2, 8, 96, 64, fresh_seed());
  auto shifted = kv;
  tq::Rng r(fresh_seed() + 9);
  std::vector<float> c(64);
  for (auto& e : c) e = float(8.0 * r.normal());
  for (size_t i = 0; i < shifted.k.size(); ++i) shifted.k[i] += c[i % 64];
  tq::eval::AttnOptions centered{32, 32, 96, 0};
  const auto a = attn(kv, "tq3", centered), b = attn(shifted, "tq3", centered), plain = attn(shifted, "tq3");
  EXPECT_NEAR(b.kld / a.kld, 1.0, 1e-3);
  EXPECT_NEAR(b.attn_rel_l2 / a.attn_rel_l2, 1.0, 1e-3);
  EXPECT_EQ(b.top1_agree, a.top1_agree);
  EXPECT_GT(plain.kld, 2 * b.kld);
  EXPECT_DOUBLE_EQ(b.k_bits, 3.0 + 16.0 / 64 + 32.0 / 96);
  // Values: Σ p_j (v_j - μ) + μ = o, so with centering the shifted values are coded exactly like the
  // unshifted ones: the same absolute reconstruction error (the relative one divides by more energy).
  auto vshift = kv;
  for (size_t i = 0; i < vshift.v.size(); ++i) vshift.v[i] += c[i % 64];
  auto energy = [](const std::vector<float>& x) { double e = 0; for (float v : x) e += double(v) * v; return e; };
  tq::eval::AttnOptions cv{32, 32, 0, 96};
  const auto va = attn(kv, "k=fp32,v=tq3", cv), vb = attn(vshift, "k=fp32,v=tq3", cv);
  EXPECT_NEAR(vb.v_rel_mse * energy(vshift.v) / (va.v_rel_mse * energy(kv.v)), 1.0, 1e-3);
  EXPECT_EQ(vb.kld, 0.0);
}

TEST(EvalAttention, CausalMaskAndGqaMapping) {
  // D=2, T=2. KV head 0: k0 = e1, k1 = -e1; KV head 1: k0 = -e1, k1 = e1. Query heads 0,1 (-> KV 0)
  // ask for +e1, heads 2,3 (-> KV 1) for -e1, scaled so that the chosen token takes ~all mass.
  // Tq = 2: query 0 sees token 0 only (mass 1 on it); query 1 sees both and picks token 0.
  // Mean mass on token 0 is then ~1; a missing causal mask or a head mapping h % Hkv gives <= 0.75.
  AttnShape s{1, 4, 2, 2, 2, 2};
  std::vector<float> k = {1, 0, -1, 0, /* head 1 */ -1, 0, 1, 0};
  std::vector<float> q;
  for (int h = 0; h < 4; ++h)
    for (int i = 0; i < 2; ++i) { q.push_back(h < 2 ? 20.f : -20.f); q.push_back(0.f); }
  std::vector<float> v = {1, 0, 0, 1, 1, 0, 0, 1};
  const auto r = tq::eval::eval_attention(q.data(), k.data(), v.data(), s, choice("fp32"), {}, 1);
  EXPECT_GT(r.sink_mass, 0.999);
  // Reversed queries: the last query prefers token 1, the first still sees token 0 only -> 0.5.
  for (auto& e : q) e = -e;
  const auto r2 = tq::eval::eval_attention(q.data(), k.data(), v.data(), s, choice("fp32"), {}, 1);
  EXPECT_NEAR(r2.sink_mass, 0.5, 1e-6);
}

TEST(EvalAttention, ShapeChecks) {
  using V = std::vector<int64_t>;
  const auto s = tq::eval::attn_shape(V{2, 8, 64}, V{2, 4, 100, 64}, V{2, 4, 100, 64});
  EXPECT_EQ(s.Tq, 1);
  EXPECT_EQ(s.Hq, 8);
  EXPECT_EQ(tq::eval::attn_shape(V{2, 8, 10, 64}, V{2, 4, 100, 64}, V{2, 4, 100, 64}).Tq, 10);
  EXPECT_THROW(tq::eval::attn_shape(V{2, 8, 64}, V{2, 4, 100, 64}, V{2, 4, 99, 64}), tq::Error);   // V != K
  EXPECT_THROW(tq::eval::attn_shape(V{2, 8, 32}, V{2, 4, 100, 64}, V{2, 4, 100, 64}), tq::Error);  // head_dim
  EXPECT_THROW(tq::eval::attn_shape(V{3, 8, 64}, V{2, 4, 100, 64}, V{2, 4, 100, 64}), tq::Error);  // batch
  EXPECT_THROW(tq::eval::attn_shape(V{2, 6, 64}, V{2, 4, 100, 64}, V{2, 4, 100, 64}), tq::Error);  // GQA
  EXPECT_THROW(tq::eval::attn_shape(V{2, 8, 101, 64}, V{2, 4, 100, 64}, V{2, 4, 100, 64}), tq::Error);  // Tq > T
  EXPECT_THROW(tq::eval::attn_shape(V{2, 8, 64}, V{2, 4, 100}, V{2, 4, 100}), tq::Error);  // rank
  EXPECT_THROW(tq::eval::attn_shape(V{2, 8, 64}, V{2, 0, 100, 64}, V{2, 0, 100, 64}), tq::Error);  // empty
}

TEST(EvalAttention, OddHeadDimAndFractionalCodecs) {
  // head_dim 100 (dense rotations, partial blocks) and calibrated fractional rates run, stay finite,
  // and rank as their bits do.
  const auto kv = random_kv(1, 2, 2, 4, 64, 100, fresh_seed());
  const auto a = attn(kv, "tq2.5"), b = attn(kv, "tq3.5"), c = attn(kv, "q4r");
  for (const auto* r : {&a, &b, &c}) EXPECT_TRUE(std::isfinite(r->kld) && std::isfinite(r->attn_rel_l2));
  EXPECT_LT(b.k_rel_mse, a.k_rel_mse);
}

TEST(Pareto, FrontAndSvg) {
  std::vector<tq::eval::PlotPoint> p = {{"a", 2, 0.1}, {"b", 3, 0.2}, {"c", 3, 0.01}, {"d", 4, 0.05}, {"e<&>", 8, 0.001},
                                        {"zero", 16, 0.0}};
  const auto f = tq::eval::pareto_front(p);
  EXPECT_EQ(f, (std::vector<size_t>{0, 2, 4, 5}));
  const std::string svg = tq::eval::pareto_svg(p, "t", "bits", "err");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  size_t circles = 0;
  for (size_t pos = 0; (pos = svg.find("<circle", pos)) != std::string::npos; ++pos) ++circles;
  EXPECT_EQ(circles, 5u);  // the zero-error point cannot sit on a log axis: listed, not drawn
  EXPECT_NE(svg.find("e&lt;&amp;&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("e<&>"), std::string::npos);
  EXPECT_NE(svg.find("zero"), std::string::npos);
}

}  // namespace
