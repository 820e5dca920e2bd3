// CUDA decode attention vs the CPU reference: K/V encoded by the CPU codec into pages (random page
// order), the kernel's output against float64 attention over the CPU-decoded K/V. Fresh random
// data each run, outputs poisoned, odd shapes. Skips (visibly) without a GPU.
// Plans that score TurboQuant K in int8 (DecodePlan::int8_scores) are checked twice: against the
// exact reference with a tolerance for the int8 rounding, and tightly against a float64 reference
// that applies the same rounding (q rotated and rounded to int8 per row, int8 centroids; prod K:
// q's sketch S·Rq rounded to int8 per row too, scored against the ±1 QJL signs).
#include <gtest/gtest.h>

#if defined(TQ_HAVE_CUDA)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/decode_frag.h"
#include "turboquant/cuda/decode.h"
#include "test_util.h"
#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/tq_codec.h"

namespace {

#define CK(x) ASSERT_EQ((x), cudaSuccess) << #x

struct Case {
  std::vector<int> lens;
  int hq, hkv, d;
  const char* kv;
  tq::cuda::DType out_dtype;
  tq::cuda::DType q_dtype = tq::cuda::DType::kF32;
  int repeats = 1;  // > 1: run again on the same workspace, outputs must be bit-identical
  bool quad_v = false;  // V pages in token quads, PV on int8 (DecodeShape::v_quads)
};

// q as the kernel reads it: rounded to the dtype (the reference uses the rounded values too).
std::vector<uint8_t> to_dtype(std::vector<float>& q, tq::cuda::DType dt) {
  std::vector<uint8_t> raw;
  if (dt == tq::cuda::DType::kF32) {
    raw.resize(q.size() * 4);
    std::memcpy(raw.data(), q.data(), raw.size());
    return raw;
  }
  raw.resize(q.size() * 2);
  for (size_t i = 0; i < q.size(); ++i) {
    const uint16_t h = dt == tq::cuda::DType::kF16 ? tq::float_to_half(q[i]) : tq::float_to_bf16(q[i]);
    q[i] = dt == tq::cuda::DType::kF16 ? tq::half_to_float(h) : tq::bf16_to_float(h);
    std::memcpy(raw.data() + 2 * i, &h, 2);
  }
  return raw;
}

void run_case(const Case& c, std::mt19937& rng) {
  SCOPED_TRACE(testing::Message() << "kv=" << c.kv << " d=" << c.d << " hq=" << c.hq << " hkv=" << c.hkv
                                  << " B=" << c.lens.size() << " T0=" << c.lens[0]);
  const int B = int(c.lens.size()), D = c.d, PT = 64;
  const int max_len = *std::max_element(c.lens.begin(), c.lens.end());
  const int max_pages = (max_len + PT - 1) / PT;
  const int num_pages = B * max_pages + 3;
  tq::cuda::DecodeShape s;
  s.batch = B; s.heads_q = c.hq; s.heads_kv = c.hkv; s.head_dim = D; s.page_tokens = PT;
  s.max_pages_per_seq = max_pages; s.num_pages = num_pages; s.max_seq_len = max_len;
  s.q_dtype = c.q_dtype; s.out_dtype = c.out_dtype;
  const auto kv = tq::parse_kv_codec(c.kv);
  s.v_quads = c.quad_v;
  tq::cuda::DecodePlan plan(s, kv.k, kv.v);
  const auto kl = plan.k_layout(), vl = plan.v_layout();
  EXPECT_EQ(vl.quad_bits, c.quad_v ? uint32_t(tq::parse_kv_codec(c.kv).v.bits) : 0u);
  const tq::Codec &kc = plan.k_codec(), &vc = plan.v_codec();

  // int8 scores: per part p of the K codec (fractional codecs have two), the kernel's int8
  // centroid table (frag::make_table_i8 of c * sqrt(m_p), m_p the part's dim).
  const bool i8 = plan.int8_scores();
  const auto* ktq = dynamic_cast<const tq::TqCodec*>(&kc);
  struct PartI8 {
    int first, dim, bits, mse_off;
    std::vector<int> e8;
    double kdeq;
  };
  std::vector<PartI8> kparts;
  if (i8) {
    for (size_t p = 0; p < ktq->parts().size(); ++p) {
      const auto& pl = ktq->tq_layout()->part[p];
      PartI8 pi{int(pl.first), int(pl.dim), int(pl.mse_bits), int(pl.mse_offset), {}, 0};
      std::vector<double> cs;
      for (double x : ktq->parts()[p].cb->centroids()) cs.push_back(x * std::sqrt(double(pi.dim)));
      uint32_t tab8[4];
      pi.kdeq = tq::cuda::frag::make_table_i8(cs.data(), int(cs.size()), tab8);
      for (size_t i = 0; i < cs.size(); ++i) pi.e8.push_back(int8_t(uint8_t(tab8[i / 4] >> (8 * (i % 4)))));
      kparts.push_back(pi);
    }
  }
  const int NP = int(kparts.size());
  std::vector<float> ref8(i8 ? size_t(B) * c.hq * D : 0);

  std::normal_distribution<float> nd;
  std::vector<float> q(size_t(B) * c.hq * D);
  for (auto& x : q) x = nd(rng);
  const std::vector<uint8_t> q_raw = to_dtype(q, c.q_dtype);
  // Pages in a shuffled order: page_table[b][i] = perm[b * max_pages + i].
  std::vector<int> perm(num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> table(size_t(B) * max_pages);
  for (size_t i = 0; i < table.size(); ++i) table[i] = perm[i];
  std::vector<uint8_t> kpool(size_t(num_pages) * kl.page_bytes(), 0), vpool(size_t(num_pages) * vl.page_bytes(), 0);
  std::vector<float> ref(size_t(B) * c.hq * D);
  const int G = c.hq / c.hkv;
  std::vector<uint8_t> kcode(kc.code_size()), vcode(vc.code_size());
  for (int b = 0; b < B; ++b) {
    const int T = c.lens[b];
    std::vector<float> kd(size_t(c.hkv) * T * D), vd(kd.size());  // decoded (what the kernel sees)
    std::vector<int> kq(i8 ? kd.size() : 0);                      // int8 path: K codes (rotated
    std::vector<double> kn(i8 ? size_t(c.hkv) * T * NP : 0);     // domain) and part norms
    const bool kprod = i8 && ktq->prod();                          // prod K: QJL signs ±1, gamma
    std::vector<int> ksg(kprod ? kd.size() : 0);                   // per part
    std::vector<double> kg(kprod ? size_t(c.hkv) * T * NP : 0);
    for (int h = 0; h < c.hkv; ++h)
      for (int t = 0; t < T; ++t) {
        std::vector<float> k(D), v(D);
        for (auto& x : k) x = nd(rng) * 2.0f;
        for (auto& x : v) x = nd(rng);
        if (t == 0) for (auto& x : k) x *= 4.0f;  // an attention-sink-like first token
        kc.encode(k.data(), 1, D, kcode.data());
        vc.encode(v.data(), 1, D, vcode.data());
        const int page = table[size_t(b) * max_pages + t / PT], off = t % PT;
        uint8_t* kp = kpool.data() + size_t(page) * kl.page_bytes();
        uint8_t* vp = vpool.data() + size_t(page) * vl.page_bytes();
        std::copy_n(kcode.data(), kl.codes_bytes, kp + kl.codes_offset(h, off));
        std::copy_n(kcode.data() + kl.codes_bytes, kl.scalar_bytes, kp + kl.scalars_offset(h, off));
        std::copy_n(vcode.data(), vl.codes_bytes, vp + vl.codes_offset(h, off));
        std::copy_n(vcode.data() + vl.codes_bytes, vl.scalar_bytes, vp + vl.scalars_offset(h, off));
        kc.decode(kcode.data(), 1, &kd[(size_t(h) * T + t) * D], D);
        if (i8)
          for (int p = 0; p < NP; ++p) {
            const PartI8& pi = kparts[p];
            for (int i = 0; i < pi.dim; ++i)
              kq[(size_t(h) * T + t) * D + pi.first + i] =  // (tq1.5p's part 1: no mse codes, code 0)
                  pi.bits ? int(tq::unpack_code_ref(kcode.data() + pi.mse_off, pi.dim, pi.bits, i)) : 0;
            kn[(size_t(h) * T + t) * NP + p] = ktq->norm(kcode.data() + kl.codes_bytes, p);
          }
        if (kprod)
          for (int p = 0; p < NP; ++p) {
            const auto& pl = ktq->tq_layout()->part[p];
            for (uint32_t i = 0; i < pl.dim; ++i)
              ksg[(size_t(h) * T + t) * D + pl.first + i] = tq::unpack_code_ref(kcode.data() + pl.qjl_offset, pl.dim, 1, i) ? 1 : -1;
            kg[(size_t(h) * T + t) * NP + p] = ktq->gamma(kcode.data() + kl.codes_bytes, p);
          }
        vc.decode(vcode.data(), 1, &vd[(size_t(h) * T + t) * D], D);
      }
    const double scale = 1.0 / std::sqrt(double(D));
    for (int hq = 0; hq < c.hq; ++hq) {
      const int h = hq / G;
      const float* qq = &q[(size_t(b) * c.hq + hq) * D];
      std::vector<double> sc(T);
      double mx = -1e300;
      for (int t = 0; t < T; ++t) {
        double acc = 0;
        for (int i = 0; i < D; ++i) acc += double(qq[i]) * kd[(size_t(h) * T + t) * D + i];
        sc[t] = acc * scale;
        mx = std::max(mx, sc[t]);
      }
      auto attend = [&](std::vector<double>& lg, float* dst) {
        const double m = *std::max_element(lg.begin(), lg.end());
        double den = 0;
        for (auto& x : lg) { x = std::exp(x - m); den += x; }
        for (int i = 0; i < D; ++i) {
          double acc = 0;
          for (int t = 0; t < T; ++t) acc += lg[t] * vd[(size_t(h) * T + t) * D + i];
          dst[i] = float(acc / den);
        }
      };
      (void)mx;
      attend(sc, &ref[(size_t(b) * c.hq + hq) * D]);
      if (i8) {  // the kernel's arithmetic: fp32 rotated q * scale / sqrt(m_p), int8 per row and
                 // part, int8 centroids, per-part norms
        std::vector<float> r(D);
        ktq->rotate(qq, r.data());
        std::vector<double> lg(T, 0.0);
        for (const PartI8& pi : kparts) {
          const float qs = float(scale) * float(1.4426950408889634) / std::sqrt(float(pi.dim));  // log2(e)
          float amax = 0;
          for (int i = pi.first; i < pi.first + pi.dim; ++i) { r[i] *= qs; amax = std::max(amax, std::fabs(r[i])); }
          const int p = int(&pi - kparts.data());
          for (int t = 0; t < T; ++t) {
            long acc = 0;
            for (int i = pi.first; i < pi.first + pi.dim; ++i)
              acc += long(std::nearbyint(r[i] * (127.f / amax))) * pi.e8[kq[(size_t(h) * T + t) * D + i]];
            const double n = tq::half_to_float(tq::float_to_half(float(kn[(size_t(h) * T + t) * NP + p])));
            lg[t] += double(acc) * (amax / 127.0) * pi.kdeq * n / 1.4426950408889634;
          }
          if (kprod) {  // + n κ γ <S r, σ>: the sketch of the part's scaled rotated q, int8 per row and part
            const auto& part = ktq->parts()[p];
            const int m = pi.dim, f = pi.first;
            std::vector<double> sk(m);
            double smax = 0;
            for (int i = 0; i < m; ++i) {
              double a = 0;
              for (int j = 0; j < m; ++j) a += double(part.sketch[size_t(i) * m + j]) * r[f + j];
              sk[i] = a;
              smax = std::max(smax, std::fabs(a));
            }
            const double kap = float(part.qjl_scale * std::sqrt(double(m)));
            for (int t = 0; t < T; ++t) {
              long acc = 0;
              for (int i = 0; i < m; ++i)
                acc += long(std::nearbyint(sk[i] * (127.0 / smax))) * ksg[(size_t(h) * T + t) * D + f + i];
              const double n = tq::half_to_float(tq::float_to_half(float(kn[(size_t(h) * T + t) * NP + p])));
              lg[t] += double(acc) * (smax / 127.0) * kap * kg[(size_t(h) * T + t) * NP + p] * n / 1.4426950408889634;
            }
          }
        }
        attend(lg, &ref8[(size_t(b) * c.hq + hq) * D]);
      }
    }
  }
  if (c.quad_v) {  // every 16-token block of every page and head into token quads (layout.h)
    const int bits = vc.spec().bits;
    std::vector<uint8_t> codes(D), quad(size_t(2) * D * bits);
    for (int page = 0; page < num_pages; ++page)
      for (int h = 0; h < c.hkv; ++h)
        for (int blk = 0; blk < PT / 16; ++blk) {
          uint8_t* rows = vpool.data() + size_t(page) * vl.page_bytes() + vl.codes_offset(h, 16 * blk);
          for (int r = 0; r < 16; ++r) {
            for (int i = 0; i < D; ++i) codes[i] = uint8_t(tq::unpack_code_ref(rows + r * vl.codes_bytes, D, bits, i));
            tq::quad_put_token(codes.data(), uint32_t(D), bits, r, quad.data());
          }
          std::copy(quad.begin(), quad.end(), rows);
        }
  }
  // Device buffers.
  const size_t out_elt = c.out_dtype == tq::cuda::DType::kF32 ? 4 : 2;
  void *dq, *dk, *dv, *dt, *dl, *dout, *dws;
  CK(cudaMalloc(&dq, q_raw.size()));
  CK(cudaMalloc(&dk, kpool.size()));
  CK(cudaMalloc(&dv, vpool.size()));
  CK(cudaMalloc(&dt, table.size() * 4));
  CK(cudaMalloc(&dl, B * 4));
  CK(cudaMalloc(&dout, ref.size() * out_elt));
  CK(cudaMalloc(&dws, plan.workspace_bytes()));
  CK(cudaMemcpy(dq, q_raw.data(), q_raw.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dk, kpool.data(), kpool.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dv, vpool.data(), vpool.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dt, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dl, c.lens.data(), B * 4, cudaMemcpyHostToDevice));
  CK(cudaMemset(dout, 0xFF, ref.size() * out_elt));  // poison: NaN in every dtype
  CK(cudaMemset(dws, 0xFF, plan.workspace_bytes()));
  CK(cudaMemset(static_cast<char*>(dws) + plan.workspace_bytes() - 256, 0, 256));  // error flag
  tq::cuda::DecodeArgs a;
  a.q = dq; a.k_pool = static_cast<uint8_t*>(dk); a.v_pool = static_cast<uint8_t*>(dv);
  a.page_table = static_cast<int32_t*>(dt); a.seq_lens = static_cast<int32_t*>(dl); a.out = dout; a.workspace = dws;
  plan.run(a);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  EXPECT_EQ(plan.read_error_flag(dws), 0);
  std::vector<uint8_t> first(ref.size() * out_elt);
  CK(cudaMemcpy(first.data(), dout, first.size(), cudaMemcpyDeviceToHost));
  for (int rep = 1; rep < c.repeats; ++rep) {  // same workspace: counters must be back at zero
    CK(cudaMemset(dout, 0xFF, ref.size() * out_elt));
    plan.run(a);
    CK(cudaDeviceSynchronize());
    std::vector<uint8_t> again(first.size());
    CK(cudaMemcpy(again.data(), dout, again.size(), cudaMemcpyDeviceToHost));
    EXPECT_TRUE(again == first) << "run " << rep << " on the same workspace differs from the first";
  }
  std::vector<float> out(ref.size());
  if (out_elt == 4) {
    CK(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost));
  } else {
    std::vector<uint16_t> h(out.size());
    CK(cudaMemcpy(h.data(), dout, h.size() * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < h.size(); ++i)
      out[i] = c.out_dtype == tq::cuda::DType::kF16 ? tq::half_to_float(h[i]) : tq::bf16_to_float(h[i]);
  }
  double num = 0, den = 0;
  size_t bad = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) ++bad;
    num += double(out[i] - ref[i]) * (out[i] - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  EXPECT_EQ(bad, 0u) << "unwritten or non-finite outputs";
  // v1: fp32 arithmetic over the same decoded values (~1e-6); fp16 / bf16 output rounding 2^-11 /
  // 2^-8. v3 (tensor cores) rounds q, the centroid tables and p*|v| to fp16 (2^-11 each): a numpy
  // emulation of that arithmetic on these shapes gives 2e-4 (T = 1) to 1e-3 (T = 4097); 3x margin.
  double tol = c.out_dtype == tq::cuda::DType::kF32 ? 1e-4 : (c.out_dtype == tq::cuda::DType::kF16 ? 2e-3 : 1e-2);
  if (plan.uses_tensor_cores()) tol = std::max(tol, 3e-3);
  // tq5..tq8 (fp16 scores): K's fp16 centroid table adds to every score term a second rounding of
  // the size of q's (2^-11 relative); a C++ emulation of these shapes (fp16 q, K table, p * |v| and
  // V table; logit std 2, 4x sink) gives 2e-4 (T = 1) to 2.5e-3 (T = 4097) over seeds: 2x margin.
  // tq4.5 .. tq7.5 and the mse term of tq6p .. tq8p are scored the same way (fp16 tables); their QJL
  // term's int8 sketch adds max/254 of a residual term that is a few % of the score.
  if (kv.k.id == tq::CodecId::kTqMse && kv.k.bits >= (kv.k.fractional ? 4 : 5)) tol = std::max(tol, 5e-3);
  if (kv.k.id == tq::CodecId::kTqProd && kv.k.bits >= (kv.k.fractional ? 5 : 6)) tol = std::max(tol, 5e-3);  // tq5.5p .. tq7.5p too
  // int8 scores (TurboQuant K on v3): q and the centroids rounded to int8 (steps max/127). A numpy
  // emulation of these cases (logit std 2, a 4x sink token) gives 0.5-6% (T = 7..4097, 3-4 bits);
  // the tight check is the int8-emulating reference below.
  if (i8) tol = 0.1;
  const double rel = std::sqrt(num / den);
  std::printf("    rel. L2 vs float64: %.2e (tol %.0e)\n", rel, tol);
  EXPECT_LT(rel, tol);
  if (i8) {
    // Same arithmetic as the kernel up to fp32 vs float64 accumulation, fp16 p * |v| and fp16 V
    // centroids (2^-11 each) and q coordinates within 1e-6 of an int8 rounding tie: 3e-3 as for the
    // fp16 path (a wrong scale, table or code order is off by > 1e-2 on these shapes).
    double n8 = 0, d8 = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      n8 += double(out[i] - ref8[i]) * (out[i] - ref8[i]);
      d8 += double(ref8[i]) * ref8[i];
    }
    double tol8 = std::max(3e-3, c.out_dtype == tq::cuda::DType::kBF16 ? 1e-2 : 0.0);
    // Quad V: V centroids in int8 (steps of max/127) and p * |v| in u8 per 32-token block (steps
    // of the block max / 255), not emulated by the reference: ~0.2-0.4% per weighted term.
    if (c.quad_v) tol8 = 1.5e-2;
    std::printf("    rel. L2 vs int8-emulating float64: %.2e (tol %.0e)\n", std::sqrt(n8 / d8), tol8);
    EXPECT_LT(std::sqrt(n8 / d8), tol8);
  }
  for (void* p : {dq, dk, dv, dt, dl, dout, dws}) cudaFree(p);
}

// A fresh seed per test (printed on failure); every case through v3, and through the v1 kernels too
// when asked.
void run_cases(const std::vector<Case>& cases, bool also_v1) {
  TQ_FRESH_RNG(rng);
  for (const auto& c : cases) run_case(c, rng);
  if (!also_v1) return;
  setenv("TQ_CUDA_DECODE_V1", "1", 1);
  for (const auto& c : cases) run_case(c, rng);
  unsetenv("TQ_CUDA_DECODE_V1");
}

TEST(CudaDecode, MatchesCpuReference) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  using tq::cuda::DType;
  run_cases({
      {{1}, 32, 8, 128, "tq3", DType::kF32},
      {{7}, 8, 8, 128, "tq4", DType::kF32},                              // GQA 1
      {{113}, 28, 4, 128, "k4v3", DType::kF32, DType::kF16},             // GQA 7, fp16 q
      {{4097}, 32, 8, 128, "tq3", DType::kF16, DType::kBF16},            // bf16 q
      {{113, 1, 4097}, 32, 8, 128, "tq2", DType::kF32, DType::kF32, 2},  // unequal lengths, rerun
      {{1000, 70}, 16, 4, 128, "fp16", DType::kF32},
      {{4097}, 32, 8, 128, "k4v4", DType::kF32},
      {{300}, 8, 2, 64, "k3v2", DType::kBF16},
      {{257, 64}, 8, 1, 256, "tq4", DType::kF32},
      {{129}, 4, 4, 64, "fp16", DType::kF16},
      {{200, 7}, 16, 2, 256, "fp16", DType::kF32},                       // GQA 8, fp16 tails
      {{65}, 8, 8, 64, "tq2", DType::kF32},
      // fp16 K with TurboQuant V: exact fp16 scores, compressed values (K is the sensitive side)
      {{113, 7}, 32, 8, 128, "k=fp16,v=tq3", DType::kF16},
      {{4097}, 28, 4, 64, "k=fp16,v=tq4", DType::kBF16},                 // GQA 7
      {{300, 1}, 16, 2, 256, "k=fp16,v=tq3", DType::kF32},               // GQA 8
      // 1 bit: the sign of each rotated coordinate (two centroids), the 1-bit plane of layout.h
      {{113, 7}, 32, 8, 128, "tq1", DType::kF32},
      {{4097}, 8, 2, 64, "tq1", DType::kF16, DType::kBF16},               // GQA 4
      {{257, 1}, 16, 2, 256, "tq1", DType::kBF16},
  }, /*also_v1=*/true);
}

// Fractional codecs (two parts: the first D/4 (tq2.5) or D/2 (the others) channels at one more bit,
// each part with its own rotation — dense for 96 / 192 dims, else Hadamard — norm and int8 scale;
// tq1.5: a 2-bit part 0 and a 1-bit part 1, two centroids; tq4.5 .. tq7.5: fp16 tables in shared
// memory and fp16 scores, as tq5..tq8). v3 only.
TEST(CudaDecode, FractionalCodecsMatchCpuReference) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  using tq::cuda::DType;
  run_cases({
      {{1}, 32, 8, 128, "tq2.5", DType::kF32},
      {{113, 1, 4097}, 32, 8, 128, "tq2.5", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{7}, 28, 4, 128, "tq3.5", DType::kF32, DType::kF16},               // GQA 7
      {{4097}, 8, 8, 128, "tq3.5", DType::kBF16, DType::kBF16},           // GQA 1
      {{300, 65}, 8, 2, 64, "tq3.5", DType::kF32},
      {{257}, 8, 1, 256, "tq2.5", DType::kF32},                           // GQA 8, dense 192
      {{130}, 16, 4, 256, "tq3.5", DType::kF16},
      {{113, 1, 4097}, 32, 8, 128, "tq1.5", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{7}, 28, 4, 64, "tq1.5", DType::kF32, DType::kF16},                // GQA 7, 32 + 32 dims
      {{4097}, 8, 8, 256, "tq1.5", DType::kBF16, DType::kBF16},           // GQA 1
      {{300, 65}, 8, 2, 128, "tq1.5", DType::kF32},                       // GQA 4
      {{257}, 8, 1, 64, "tq1.5:seed=5", DType::kBF16},                    // GQA 8
      // tq4.5 .. tq7.5: halves at B + 1 and B bits, both through fp16 tables (fp16 scores)
      {{113, 1, 4097}, 32, 8, 128, "tq4.5", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{7}, 28, 4, 64, "tq5.5", DType::kF32, DType::kF16},                // GQA 7, 32 + 32 dims
      {{4097}, 8, 8, 256, "tq6.5", DType::kBF16, DType::kBF16},           // GQA 1
      {{300, 65}, 8, 2, 128, "tq7.5", DType::kF32},                       // GQA 4
      {{257}, 8, 1, 64, "tq4.5:seed=5", DType::kBF16},                    // GQA 8
      {{130, 7}, 16, 4, 256, "tq7.5", DType::kF16},
      {{70, 1}, 28, 4, 128, "tq6.5", DType::kF16},
      {{129}, 8, 8, 256, "tq5.5", DType::kF32, DType::kBF16},
      {{65, 7}, 16, 2, 64, "tq6.5", DType::kF16},
      {{1}, 32, 8, 64, "tq7.5", DType::kF32},
      {{300}, 8, 2, 256, "tq4.5", DType::kF16},
      {{4097}, 32, 8, 128, "tq5.5", DType::kF16},
  }, /*also_v1=*/false);
}

// TurboQuant-prod K and V (mse at B - 1 bits + QJL signs of the residual; K: q's sketch as a second
// int8 mma, V: the QJL term accumulated in the sketch domain and folded per warp). v3 only.
TEST(CudaDecode, ProdCodecsMatchCpuReference) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  using tq::cuda::DType;
  run_cases({
      {{1}, 32, 8, 128, "tq3p", DType::kF32},
      {{113, 1, 4097}, 32, 8, 128, "tq4p", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{7}, 28, 4, 128, "tq3p", DType::kF32, DType::kF16},                // GQA 7
      {{4097}, 8, 8, 128, "tq4p", DType::kBF16, DType::kBF16},            // GQA 1
      {{300, 65}, 8, 2, 64, "tq3p", DType::kF32},                         // GQA 4
      {{113}, 28, 4, 64, "tq4p", DType::kF16, DType::kBF16},
      {{257}, 8, 1, 256, "tq3p", DType::kF32},                            // GQA 8
      {{130, 7}, 16, 4, 256, "tq4p", DType::kF16},
      {{4097}, 32, 8, 256, "tq3p:seed=5", DType::kBF16},
      // tq2p: 1-bit mse codes + 1-bit QJL signs
      {{113, 1, 4097}, 32, 8, 128, "tq2p", DType::kF16, DType::kF32, 2},
      {{300, 65}, 28, 4, 64, "tq2p", DType::kF32},                        // GQA 7
      {{257}, 8, 1, 256, "tq2p", DType::kBF16},                            // GQA 8
      // tq5p: 4-bit mse codes (the tq4 int8 K and fp16 V lookups) + 1-bit QJL signs
      {{113, 1, 4097}, 32, 8, 128, "tq5p", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{7}, 28, 4, 64, "tq5p", DType::kF32, DType::kF16},                 // GQA 7
      {{4097}, 8, 8, 128, "tq5p", DType::kBF16, DType::kBF16},            // GQA 1
      {{300, 65}, 8, 2, 256, "tq5p", DType::kF32},                        // GQA 4
      {{257}, 8, 1, 64, "tq5p:seed=5", DType::kBF16},                     // GQA 8
      // tq6p .. tq8p: 5..7-bit mse codes (the wide fp16-table K and V paths) + 1-bit QJL signs
      {{113, 1, 4097}, 32, 8, 128, "tq6p", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{7}, 28, 4, 64, "tq7p", DType::kF32, DType::kF16},                 // GQA 7
      {{4097}, 8, 8, 256, "tq8p", DType::kBF16, DType::kBF16},            // GQA 1
      {{300, 65}, 8, 2, 128, "tq8p", DType::kF32},                        // GQA 4
      {{257}, 8, 1, 256, "tq6p:seed=5", DType::kBF16},                    // GQA 8
      {{130, 7}, 16, 4, 64, "tq6p", DType::kF16},
      {{70, 1}, 28, 4, 256, "tq7p", DType::kF16},
      {{129}, 8, 8, 128, "tq7p", DType::kF32, DType::kBF16},
      {{65, 7}, 16, 2, 64, "tq8p", DType::kF16},
  }, /*also_v1=*/false);
}

// Fractional prod tq2.5p .. tq4.5p K and V (two parts, each a prod: the tqB.5 mse terms with per-part
// int8 q scales and norms, plus per part the QJL term: K's sketch per part as a second int8 mma with
// one accumulator per part, V's accumulated per part in the sketch domain and folded by the
// block-diagonal κ_p√m_p S_p^T). The int8-emulating reference rounds each part's sketch with its own
// scale, as the kernel. v3 only.
TEST(CudaDecode, FractionalProdCodecsMatchCpuReference) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  using tq::cuda::DType;
  run_cases({
      {{1}, 32, 8, 128, "tq2.5p", DType::kF32},
      {{113, 1, 4097}, 32, 8, 128, "tq3.5p", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{7}, 28, 4, 128, "tq2.5p", DType::kF32, DType::kF16},                // GQA 7, dense 96
      {{4097}, 8, 8, 128, "tq4.5p", DType::kBF16, DType::kBF16},            // GQA 1
      {{300, 65}, 8, 2, 64, "tq3.5p", DType::kF32},                         // GQA 4, 32 + 32 dims
      {{113}, 28, 4, 64, "tq4.5p", DType::kF16, DType::kBF16},              // GQA 7
      {{257}, 8, 1, 256, "tq2.5p", DType::kF32},                            // GQA 8, dense 192
      {{130, 7}, 16, 4, 256, "tq3.5p", DType::kF16},
      {{4097}, 32, 8, 256, "tq4.5p:seed=5", DType::kBF16},
      {{113, 1, 4097}, 32, 8, 256, "tq2.5p", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{70, 1}, 28, 4, 64, "tq3.5p:seed=5", DType::kF16},
      {{65, 7}, 8, 1, 128, "tq4.5p", DType::kF32, DType::kBF16},            // GQA 8
      // tq1.5p: part 1 has QJL signs only (no mse codes); tq5.5p .. tq7.5p: the fractional wide
      // (fp16-table) mse paths plus the QJL terms
      {{113, 1, 4097}, 32, 8, 128, "tq1.5p", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{300, 65}, 8, 2, 64, "tq1.5p", DType::kF32},                         // GQA 4, 32 + 32 dims
      {{257}, 8, 1, 256, "tq1.5p:seed=5", DType::kBF16},                     // GQA 8
      {{1}, 32, 8, 128, "tq5.5p", DType::kF32},
      {{113, 1, 4097}, 32, 8, 256, "tq5.5p", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{70, 1}, 28, 4, 64, "tq5.5p", DType::kF16},                          // GQA 7
      {{7}, 28, 4, 128, "tq6.5p", DType::kF32, DType::kF16},                // GQA 7
      {{4097}, 8, 8, 64, "tq6.5p", DType::kBF16, DType::kBF16},             // GQA 1
      {{130, 7}, 16, 4, 256, "tq6.5p:seed=5", DType::kF16},
      {{4097}, 32, 8, 128, "tq7.5p", DType::kBF16},
      {{113}, 28, 4, 64, "tq7.5p", DType::kF16, DType::kBF16},              // GQA 7
      {{65, 7}, 8, 1, 256, "tq7.5p", DType::kF32, DType::kBF16},            // GQA 8
  }, /*also_v1=*/false);
}

// tq2.5 / tq2.5p at head_dim 64 (parts of 16 + 48 dims, 18-byte rows): the CUDA-core kernels of
// decode_frac64.cu (fp32 scores, version 1), every dtype, GQA 1 .. 8, odd and unequal lengths, reruns.
TEST(CudaDecode, Frac64CodecsMatchCpuReference) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  using tq::cuda::DType;
  run_cases({
      {{1}, 32, 8, 64, "tq2.5", DType::kF32},
      {{113, 1, 4097}, 32, 8, 64, "tq2.5", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{7}, 28, 4, 64, "tq2.5", DType::kF32, DType::kF16},                // GQA 7
      {{4097}, 8, 8, 64, "tq2.5:seed=5", DType::kBF16, DType::kBF16},     // GQA 1
      {{257}, 8, 1, 64, "tq2.5", DType::kF32},                            // GQA 8
      {{1}, 32, 8, 64, "tq2.5p", DType::kF32},
      {{113, 1, 4097}, 32, 8, 64, "tq2.5p", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{7}, 28, 4, 64, "tq2.5p", DType::kF32, DType::kF16},                // GQA 7
      {{300, 65}, 8, 2, 64, "tq2.5p:seed=9", DType::kBF16},                // GQA 4
      {{257}, 8, 1, 64, "tq2.5p", DType::kF32, DType::kBF16},              // GQA 8
  }, /*also_v1=*/false);
}

// tq5..tq8 K and V (32..256 centroids: fp16 tables in shared memory, QK^T and PV on the f16 mma):
// every bit width at every head_dim, odd and unequal lengths, GQA 1, 4, 7, 8, all dtypes. v3 only.
TEST(CudaDecode, WideCodecsMatchCpuReference) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  using tq::cuda::DType;
  run_cases({
      {{1}, 32, 8, 128, "tq5", DType::kF32},
      {{113, 1, 4097}, 32, 8, 128, "tq8", DType::kF16, DType::kF32, 2},  // unequal lengths, rerun
      {{7}, 28, 4, 128, "tq6", DType::kF32, DType::kF16},                // GQA 7, fp16 q
      {{4097}, 8, 8, 128, "tq7", DType::kBF16, DType::kBF16},            // GQA 1
      {{300, 65}, 8, 2, 64, "tq5", DType::kF32},                         // GQA 4
      {{70, 1}, 28, 4, 64, "tq6", DType::kF16},
      {{129}, 8, 8, 64, "tq7", DType::kF32, DType::kBF16},
      {{113}, 28, 4, 64, "tq8", DType::kF16, DType::kBF16},
      {{65, 7}, 16, 2, 256, "tq5", DType::kF16},                         // GQA 8
      {{257}, 8, 1, 256, "tq6", DType::kF32},
      {{130, 7}, 16, 4, 256, "tq7", DType::kF16},
      {{4097}, 32, 8, 256, "tq8:seed=5", DType::kBF16},
  }, /*also_v1=*/false);
}

// Many sequences of random lengths: segments that span several CTAs (partials merged by the last
// one), CTAs that span several segments, lengths that end anywhere inside a chunk.
// V pages in token quads (layout.h quad_pos; DecodeShape::v_quads) and PV on int8 tensor cores.
TEST(CudaDecode, QuadVMatchesCpuReference) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  using tq::cuda::DType;
  std::vector<Case> cases = {
      {{1}, 32, 8, 128, "tq3", DType::kF32},
      {{113, 1, 4097}, 32, 8, 128, "tq3", DType::kF16, DType::kF32, 2},
      {{7}, 28, 4, 128, "tq4", DType::kF32, DType::kF16},
      {{4097}, 8, 8, 128, "tq2", DType::kBF16, DType::kBF16},
      {{300, 65}, 8, 2, 64, "tq3", DType::kF32},
      {{257}, 8, 1, 256, "tq3", DType::kF32},
      {{130, 7}, 16, 4, 256, "tq4", DType::kF16},
  };
  for (auto& c : cases) c.quad_v = true;
  run_cases(cases, /*also_v1=*/false);
}

TEST(CudaDecode, PersistentScheduleManySequences) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  std::vector<int> lens(37);
  for (auto& l : lens) l = 1 + int(rng() % 1500);
  lens[5] = 20000;  // one long sequence among short ones
  run_case({lens, 32, 8, 128, "tq3", DType::kF16, DType::kF16, 3}, rng);
  run_case({{lens.begin(), lens.begin() + 9}, 8, 8, 128, "fp16", DType::kF32, DType::kF32, 2}, rng);
}

// One long sequence over few KV heads: each segment spans 33-128 CTAs, so the partials are merged
// in two levels (groups of 8 or 16 CTAs, then the groups; decode_epilogue.cuh), with the last group
// short; rerun on the same workspace (the group counters must be back at zero). Its fp16 D = 64 case
// reuses ring stages (4 chunks per CTA), so the sanitizer runs of bench/cuda/*_on_box.sh include it.
TEST(CudaDecode, LongSegmentsMergeInTwoLevels) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  using tq::cuda::DType;
  std::vector<Case> cases = {
      {{16384}, 8, 1, 128, "tq3", DType::kF16, DType::kF16, 2},  // 256 chunks, 2 per CTA: 128 CTAs
      {{4500}, 8, 2, 128, "tq3", DType::kF32, DType::kF32, 2},   // 71 chunks per head: 36 CTAs, 5 groups
      {{12345}, 16, 4, 64, "fp16", DType::kBF16},                // 4 chunks per CTA: 49 CTAs, 7 groups
      {{9000, 70}, 8, 1, 256, "tq2.5", DType::kF16},             // fractional epilogue
      {{9000, 70}, 8, 1, 128, "tq3.5p", DType::kF32},            // fractional prod (per-warp fold, then the merge)
  };
  run_cases(cases, /*also_v1=*/false);
  Case quad{{4500}, 8, 2, 128, "tq4", DType::kF16};
  quad.quad_v = true;
  quad.repeats = 2;
  run_cases({quad}, /*also_v1=*/false);
}

// Small shapes for compute-sanitizer (memcheck / racecheck run this one: bench/cuda/run_on_box.sh).
TEST(CudaDecode, SmallShapes) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  TQ_FRESH_RNG(rng);
  using tq::cuda::DType;
  run_case({{113, 1, 70}, 32, 8, 128, "tq3", DType::kF16, DType::kF16, 2}, rng);
  run_case({{65, 130}, 28, 4, 128, "k4v3", DType::kF32}, rng);
  run_case({{129}, 4, 4, 64, "fp16", DType::kF16}, rng);
  run_case({{70, 1}, 32, 8, 128, "tq2.5", DType::kF16}, rng);
  run_case({{70, 1}, 28, 4, 128, "tq3p", DType::kF16}, rng);
  run_case({{65, 7}, 32, 8, 128, "tq1", DType::kF16}, rng);
  run_case({{70, 1}, 8, 2, 64, "tq2p", DType::kF32}, rng);
  run_case({{70, 1}, 28, 4, 128, "tq7", DType::kF16}, rng);
  run_case({{70, 1}, 8, 2, 64, "tq1.5", DType::kF16}, rng);
  run_case({{65, 7}, 28, 4, 128, "tq5p", DType::kF32}, rng);
  run_case({{65, 7}, 28, 4, 128, "tq2.5p", DType::kF16}, rng);
  run_case({{70, 1}, 8, 2, 64, "tq3.5p", DType::kF32}, rng);
  Case quad{{65, 7}, 32, 8, 128, "tq3", DType::kF16};
  quad.quad_v = true;
  run_case(quad, rng);
}

TEST(CudaDecode, UnsupportedCombinationsFailAtPlanTime) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  tq::cuda::DecodeShape s;
  s.max_pages_per_seq = 4; s.num_pages = 4; s.max_seq_len = 256; s.page_tokens = 64;
  auto plan = [&](const char* kv) { auto p = tq::parse_kv_codec(kv); tq::cuda::DecodePlan x(s, p.k, p.v); };
  EXPECT_THROW(plan("k4.5v5.5"), tq::Error);  // fractional: K and V the same rate
  EXPECT_THROW(plan("tq6.5:norm=fp32"), tq::Error);
  EXPECT_THROW(plan("k2.5v3"), tq::Error);  // fractional K needs fractional V
  EXPECT_THROW(plan("k1.5v1"), tq::Error);
  EXPECT_THROW(plan("k3.5v2.5"), tq::Error);  // and the same rate
  EXPECT_THROW(plan("k2.5v1.5"), tq::Error);
  EXPECT_THROW(plan("k8pv7p"), tq::Error);  // prod: K and V the same tqBp
  EXPECT_THROW(plan("k5pv4p"), tq::Error);
  EXPECT_THROW(plan("k5pv5"), tq::Error);
  EXPECT_THROW(plan("tq1.5:norm=fp32"), tq::Error);
  EXPECT_THROW(plan("tq5p:norm=fp32"), tq::Error);
  EXPECT_NO_THROW(plan("tq1.5"));
  EXPECT_NO_THROW(plan("tq5p"));
  EXPECT_NO_THROW(plan("tq4.5"));
  EXPECT_NO_THROW(plan("tq7.5"));
  EXPECT_NO_THROW(plan("tq6p"));
  EXPECT_NO_THROW(plan("tq8p"));
  EXPECT_THROW(plan("tq8p:norm=fp32"), tq::Error);
  EXPECT_THROW(plan("k5v4"), tq::Error);  // tq5..tq8: K and V the same bits
  EXPECT_THROW(plan("k8v6"), tq::Error);
  EXPECT_THROW(plan("k=fp16,v=tq5"), tq::Error);
  EXPECT_THROW(plan("k2v1"), tq::Error);   // tq(B+1)/tqB for B = 2, 3 only
  EXPECT_NO_THROW(plan("tq3.5p"));  // fractional prod: tq1.5p .. tq7.5p
  EXPECT_NO_THROW(plan("tq2.5p"));
  EXPECT_NO_THROW(plan("tq4.5p"));
  EXPECT_NO_THROW(plan("tq1.5p"));
  EXPECT_NO_THROW(plan("tq5.5p"));
  EXPECT_NO_THROW(plan("tq6.5p"));
  EXPECT_NO_THROW(plan("tq7.5p"));
  {
    const auto p = tq::parse_kv_codec("tq1.5p");  // part 0 on int8, part 1 the QJL term alone
    const tq::cuda::DecodePlan x(s, p.k, p.v);
    EXPECT_TRUE(x.int8_scores());
  }
  {
    const auto p = tq::parse_kv_codec("tq5.5p");  // the fractional wide mse paths: fp16 scores
    const tq::cuda::DecodePlan x(s, p.k, p.v);
    EXPECT_FALSE(x.int8_scores());
  }
  for (const char* kv : {"tq3.5p:norm=fp32", "k3.5pv3p", "k3.5pv3.5", "k3.5pv4.5p", "k1.5pv1.5", "k7.5pv6.5p",
                         "k=tq3.5p,v=fp16", "k3.5v3.5p"}) {
    SCOPED_TRACE(kv);
    EXPECT_THROW(plan(kv), tq::Error);
  }
  try {  // the message names the codec
    plan("k3.5pv3.5");
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("tq3.5p"), std::string::npos) << e.what();
  }
  EXPECT_THROW(plan("k3pv3"), tq::Error);  // prod K needs prod V (and the reverse), same bits
  EXPECT_THROW(plan("k4pv3p"), tq::Error);
  EXPECT_THROW(plan("k3v3p"), tq::Error);
  EXPECT_THROW(plan("k2v4"), tq::Error);
  EXPECT_NO_THROW(plan("tq5"));
  EXPECT_NO_THROW(plan("tq8"));
  {
    const auto p = tq::parse_kv_codec("tq6");
    const tq::cuda::DecodePlan x(s, p.k, p.v);
    EXPECT_FALSE(x.int8_scores());  // tq5..tq8 are scored in fp16
    EXPECT_TRUE(x.uses_tensor_cores());
  }
  {
    const auto p = tq::parse_kv_codec("tq4.5");  // a 4-bit part 1, but fp16 tables: fp16 scores
    const tq::cuda::DecodePlan x(s, p.k, p.v);
    EXPECT_FALSE(x.int8_scores());
  }
  s.head_dim = 64;
  EXPECT_NO_THROW(plan("tq2.5"));   // 16 + 48 dims: the CUDA-core kernels of decode_frac64.cu
  EXPECT_NO_THROW(plan("tq2.5p"));  // the same split
  for (const char* kv : {"tq2.5", "tq2.5p"}) {
    const auto p = tq::parse_kv_codec(kv);
    const tq::cuda::DecodePlan x(s, p.k, p.v);
    EXPECT_EQ(x.version(), 1) << kv;
    EXPECT_FALSE(x.int8_scores()) << kv;
    EXPECT_FALSE(x.uses_tensor_cores()) << kv;
  }
  for (const char* kv : {"k2.5v3.5", "k3.5v2.5", "k1.5v2.5", "k=tq2.5,v=tq2.5p", "k=tq2.5p,v=tq2.5", "k2.5pv3.5p",
                         "tq2.5:norm=fp32", "tq2.5p:rot=dense"}) {
    SCOPED_TRACE(kv);
    EXPECT_THROW(plan(kv), tq::Error);
  }
  EXPECT_NO_THROW(plan("tq3.5p"));
  EXPECT_NO_THROW(plan("tq1.5"));         // 32 + 32 dims
  EXPECT_NO_THROW(plan("tq5p"));
  EXPECT_NO_THROW(plan("tq6.5"));         // 32 + 32 dims
  s.head_dim = 96;
  EXPECT_THROW(plan("tq1.5"), tq::Error);
  EXPECT_THROW(plan("tq3"), tq::Error);
  s.head_dim = 128; s.heads_q = 30;
  EXPECT_THROW(plan("tq3"), tq::Error);
  s.heads_q = 32; s.page_tokens = 16;
  EXPECT_THROW(plan("tq3"), tq::Error);
  // V in token quads: tqB/tqB, B = 2..4 only.
  s.page_tokens = 64;
  s.v_quads = true;
  for (const char* kv : {"tq1", "fp16", "k4v3", "k=fp16,v=tq3", "tq1.5", "tq2.5", "tq3.5", "tq3p", "tq5p", "tq5", "tq8", "tq5.5", "tq3.5p"}) {
    SCOPED_TRACE(kv);
    EXPECT_THROW(plan(kv), tq::Error);
  }
  EXPECT_NO_THROW(plan("tq3"));
}

TEST(CudaDecode, BadPageIdsAndLengthsAreFlaggedNotRead) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  tq::cuda::DecodeShape s;
  s.batch = 2; s.heads_q = 8; s.heads_kv = 2; s.head_dim = 64; s.page_tokens = 64;
  s.max_pages_per_seq = 2; s.num_pages = 4; s.max_seq_len = 128;
  s.q_dtype = tq::cuda::DType::kF32; s.out_dtype = tq::cuda::DType::kF32;
  for (const char* codec : {"tq3", "tq2.5", "tq2.5p"}) {  // v3, and decode_frac64.cu's kernels
  SCOPED_TRACE(codec);
  const auto kv = tq::parse_kv_codec(codec);
  tq::cuda::DecodePlan plan(s, kv.k, kv.v);
  void *dq, *dk, *dv, *dt, *dl, *dout, *dws;
  CK(cudaMalloc(&dq, 2 * 8 * 64 * 4));
  CK(cudaMalloc(&dk, 4 * plan.k_layout().page_bytes()));
  CK(cudaMalloc(&dv, 4 * plan.v_layout().page_bytes()));
  CK(cudaMalloc(&dt, 4 * 4));
  CK(cudaMalloc(&dl, 2 * 4));
  CK(cudaMalloc(&dout, 2 * 8 * 64 * 4));
  CK(cudaMalloc(&dws, plan.workspace_bytes()));
  CK(cudaMemset(dq, 0, 2 * 8 * 64 * 4));
  CK(cudaMemset(dk, 0, 4 * plan.k_layout().page_bytes()));
  CK(cudaMemset(dv, 0, 4 * plan.v_layout().page_bytes()));
  tq::cuda::DecodeArgs a;
  a.q = dq; a.k_pool = static_cast<uint8_t*>(dk); a.v_pool = static_cast<uint8_t*>(dv);
  a.page_table = static_cast<int32_t*>(dt); a.seq_lens = static_cast<int32_t*>(dl); a.out = dout; a.workspace = dws;
  const int32_t bad_table[4] = {0, 1, 2, 1000000};  // page 1000000 does not exist
  const int32_t lens_ok[2] = {128, 128}, lens_bad[2] = {64, 5000};
  CK(cudaMemcpy(dt, bad_table, sizeof bad_table, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dl, lens_ok, sizeof lens_ok, cudaMemcpyHostToDevice));
  plan.run(a);
  EXPECT_EQ(plan.read_error_flag(dws), 2);
  const int32_t good_table[4] = {0, 1, 2, 3};
  CK(cudaMemcpy(dt, good_table, sizeof good_table, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dl, lens_bad, sizeof lens_bad, cudaMemcpyHostToDevice));
  plan.run(a);
  EXPECT_EQ(plan.read_error_flag(dws), 1);
  CK(cudaMemcpy(dl, lens_ok, sizeof lens_ok, cudaMemcpyHostToDevice));
  plan.run(a);
  EXPECT_EQ(plan.read_error_flag(dws), 0);  // the flag describes the last run only
  a.out = nullptr;
  EXPECT_THROW(plan.run(a), tq::Error);
  for (void* p : {dq, dk, dv, dt, dl, dout, dws}) cudaFree(p);
  }
}

}  // namespace

#else
TEST(CudaDecode, SkippedWithoutCuda) { GTEST_SKIP() << "built without CUDA (TQ_ENABLE_CUDA=OFF)"; }
#endif
