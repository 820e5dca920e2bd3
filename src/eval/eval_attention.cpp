// src/eval/eval_attention.cpp — attention computed on decoded K / V against exact float64 attention
// (definitions of every metric and of the KIVI window: turboquant/eval.h).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <vector>

#include "turboquant/baseline_codecs.h"
#include "turboquant/error.h"
#include "turboquant/eval.h"
#include "turboquant/half.h"
#include "turboquant/rotation.h"

namespace tq::eval {

AttnShape attn_shape(const std::vector<int64_t>& q, const std::vector<int64_t>& k, const std::vector<int64_t>& v) {
  auto str = [](const std::vector<int64_t>& s) {
    std::string o = "[";
    for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
    return o + "]";
  };
  TQ_CHECK_ARG(k.size() == 4, "K must be [B, Hkv, T, D], got shape {}", str(k));
  TQ_CHECK_ARG(v == k, "V must have the shape of K {}, got {}", str(k), str(v));
  TQ_CHECK_ARG(q.size() == 3 || q.size() == 4, "Q must be [B, Hq, D] or [B, Hq, Tq, D], got shape {}", str(q));
  for (auto e : k) TQ_CHECK_ARG(e >= 1 && e <= (int64_t(1) << 30), "K shape {}: every dimension must be >= 1", str(k));
  for (auto e : q) TQ_CHECK_ARG(e >= 1 && e <= (int64_t(1) << 30), "Q shape {}: every dimension must be >= 1", str(q));
  AttnShape s;
  s.B = int(k[0]);
  s.Hkv = int(k[1]);
  s.T = int(k[2]);
  s.D = int(k[3]);
  s.Hq = int(q[1]);
  s.Tq = q.size() == 3 ? 1 : int(q[2]);
  TQ_CHECK_ARG(q[0] == k[0], "Q has batch {} but K has batch {}", q[0], k[0]);
  TQ_CHECK_ARG(q.back() == k[3], "Q has head_dim {} but K has head_dim {}", q.back(), k[3]);
  TQ_CHECK_ARG(s.Hq % s.Hkv == 0, "Q heads ({}) must be a multiple of KV heads ({})", s.Hq, s.Hkv);
  TQ_CHECK_ARG(s.Tq <= s.T, "Q has {} positions but K only {} tokens (causal: Tq <= T)", s.Tq, s.T);
  return s;
}

namespace {

// Stored form of one (sequence, KV head) side: what a query sees for token j is quant[j] when j is
// in the quantized prefix, fp16[j] otherwise (KIVI window); `kivi` says whether the window applies.
struct Stored {
  std::vector<float> quant, fp16;
  bool kivi = false;
  double bits = 0;
};

// Tokens [0, n) quantized for a query at position p (KIVI: whole groups outside the window).
inline int quantized_prefix(const Stored& s, int p, const AttnOptions& ko) {
  if (!s.kivi) return p + 1;
  const int m = std::max(p + 1 - ko.window, 0);
  return (m / ko.group) * ko.group;
}

Stored store_side(const float* x_in, int T, int D, const CodecSpec& spec, const Codec* codec, bool is_key,
                  const AttnOptions& ko) {
  Stored s;
  s.quant.assign(size_t(T) * D, 0.f);
  // Centering: encode x - μ (μ from the first `center` tokens), add μ back after decoding.
  const int center = std::min(is_key ? ko.center_k : ko.center_v, T);
  std::vector<double> mu(center > 0 ? D : 0, 0.0);
  std::vector<float> centered;
  const float* x = x_in;
  if (center > 0) {
    // Token 0 (the attention sink) is an outlier of its own: left out of the mean when possible.
    const int first = center > 1 ? 1 : 0;
    for (int j = first; j < center; ++j)
      for (int t = 0; t < D; ++t) mu[t] += x_in[size_t(j) * D + t];
    for (auto& m : mu) m /= (center - first);
    centered.resize(size_t(T) * D);
    for (int j = 0; j < T; ++j)
      for (int t = 0; t < D; ++t) centered[size_t(j) * D + t] = float(x_in[size_t(j) * D + t] - mu[t]);
    x = centered.data();
  }
  if (spec.id == CodecId::kKivi2) {
    s.kivi = true;
    s.fp16.resize(size_t(T) * D);
    for (size_t i = 0; i < s.fp16.size(); ++i) s.fp16[i] = half_to_float(float_to_half(x_in[i]));
    const int full = (T / ko.group) * ko.group;  // only whole groups are ever quantized
    if (full > 0) {
      if (is_key) {
        kivi_quantize_per_channel(x, size_t(full), D, size_t(D), ko.group, 2, s.quant.data());
      } else {
        std::vector<uint8_t> codes(codec->code_size() * size_t(full));
        codec->encode(x, size_t(full), size_t(D), codes.data());
        codec->decode(codes.data(), size_t(full), s.quant.data(), size_t(D));
      }
    }
    const int nq = quantized_prefix(s, T - 1, ko);
    const double qbits = is_key ? double(nq) * D * 2 + double(nq / ko.group) * D * 32
                                : double(nq) * double(codec->code_size()) * 8;
    s.bits = qbits + double(T - nq) * D * 16;
  } else {
    std::vector<uint8_t> codes(codec->code_size() * size_t(T));
    codec->encode(x, size_t(T), size_t(D), codes.data());
    codec->decode(codes.data(), size_t(T), s.quant.data(), size_t(D));
    s.bits = double(T) * double(codec->code_size()) * 8;
  }
  if (center > 0) {
    for (int j = 0; j < T; ++j)
      for (int t = 0; t < D; ++t) s.quant[size_t(j) * D + t] = float(s.quant[size_t(j) * D + t] + mu[t]);
    s.bits += double(D) * 32;  // the stored fp32 mean
  }
  return s;
}

inline const float* row(const Stored& s, int j, int nq, int D) {
  return (j < nq ? s.quant.data() : s.fp16.data()) + size_t(j) * D;
}

std::string method(const CodecSpec& spec, bool is_key, const AttnOptions& ko) {
  const int center = is_key ? ko.center_k : ko.center_v;
  const std::string c = center > 0 ? fmt::format(", centered (mean of first {} tokens)", center) : "";
  if (spec.id != CodecId::kKivi2) return "per-vector" + c;
  return fmt::format("{} G={} + fp16 window R={}{}", is_key ? "per-channel" : "per-token", ko.group, ko.window, c);
}

// Indices of the k largest values (ties: lower index first).
std::vector<int> top_k(const std::vector<double>& v, int n, int k) {
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min(k, n);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return v[a] != v[b] ? v[a] > v[b] : a < b; });
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace

AttnResult eval_attention(const float* q, const float* k, const float* v, const AttnShape& s, const CodecChoice& c,
                          const AttnOptions& ko, uint64_t seed, const Progress& progress) {
  TQ_CHECK_ARG(ko.group >= 1 && ko.window >= 0, "KIVI group {} must be >= 1 and window {} >= 0", ko.group, ko.window);
  TQ_CHECK_ARG(ko.center_k >= 0 && ko.center_v >= 0, "centering prefixes must be >= 0 (0 = off)");
  const int B = s.B, Hq = s.Hq, Hkv = s.Hkv, Tq = s.Tq, T = s.T, D = s.D, G = Hq / Hkv;
  const auto t0 = std::chrono::steady_clock::now();
  AttnResult r;
  r.codec = c.label;
  r.k_codec = c.k.name();
  r.v_codec = c.v.name();
  r.k_method = method(c.k, true, ko);
  r.v_method = method(c.v, false, ko);

  const double inv_sqrt_d = 1.0 / std::sqrt(double(D));
  double k_err = 0, k_norm = 0, v_err = 0, v_norm = 0, ipr_e = 0, ipr_s = 0, sc_e = 0, sc_s = 0;
  double o_err = 0, o_norm = 0, kld = 0, top1 = 0, top8 = 0, sink = 0, k_bits = 0, v_bits = 0;
  size_t n_q = 0, n_top1 = 0, n_top8 = 0;
  Rng rng(seed);
  std::vector<double> sc(T), sch(T), p(T), ph(T), o(D), oh(D), u(D);
  std::vector<float> calib;
  size_t done = 0;
  for (int h = 0; h < Hkv; ++h) {
    // Codecs per KV head (fractional rates calibrate their outlier channels on this head's data).
    auto make = [&](const CodecSpec& spec, const float* base) -> std::shared_ptr<const Codec> {
      const bool needs_calib = spec.is_turboquant() && spec.fractional;
      if (needs_calib) {
        calib.resize(size_t(B) * T * D);
        for (int b = 0; b < B; ++b)
          std::copy_n(base + (size_t(b) * Hkv + h) * T * D, size_t(T) * D, calib.begin() + size_t(b) * T * D);
      }
      return Codec::create(spec, D, needs_calib ? calib.data() : nullptr, needs_calib ? size_t(B) * T : 0);
    };
    const auto kc = make(c.k, k), vc = make(c.v, v);
    for (int b = 0; b < B; ++b) {
      const float* kb = k + (size_t(b) * Hkv + h) * T * D;
      const float* vb = v + (size_t(b) * Hkv + h) * T * D;
      const Stored ks = store_side(kb, T, D, c.k, kc.get(), true, ko);
      const Stored vs = store_side(vb, T, D, c.v, vc.get(), false, ko);
      k_bits += ks.bits;
      v_bits += vs.bits;
      // Reconstruction of the cache as stored at length T.
      const int nqk = quantized_prefix(ks, T - 1, ko), nqv = quantized_prefix(vs, T - 1, ko);
      for (int j = 0; j < T; ++j) {
        const float* kh = row(ks, j, nqk, D);
        const float* vh = row(vs, j, nqv, D);
        for (int t = 0; t < D; ++t) u[t] = rng.normal();
        double ux = 0, uy = 0;
        for (int t = 0; t < D; ++t) {
          const double kx = kb[size_t(j) * D + t], vx = vb[size_t(j) * D + t];
          k_err += (kh[t] - kx) * (kh[t] - kx);
          k_norm += kx * kx;
          v_err += (vh[t] - vx) * (vh[t] - vx);
          v_norm += vx * vx;
          ux += u[t] * kx;
          uy += u[t] * kh[t];
        }
        ipr_e += (uy - ux) * (uy - ux);
        ipr_s += ux * ux;
      }
      for (int g = 0; g < G; ++g) {
        const int hq = h * G + g;
        for (int i = 0; i < Tq; ++i) {
          const float* qi = q + ((size_t(b) * Hq + hq) * Tq + i) * D;
          const int pos = T - Tq + i, nk = pos + 1;
          const int qk = quantized_prefix(ks, pos, ko), qv = quantized_prefix(vs, pos, ko);
          double mx = -INFINITY, mxh = -INFINITY;
          for (int j = 0; j < nk; ++j) {
            const float* kx = kb + size_t(j) * D;
            const float* kh = row(ks, j, qk, D);
            double a = 0, ah = 0;
            for (int t = 0; t < D; ++t) {
              a += double(qi[t]) * kx[t];
              ah += double(qi[t]) * kh[t];
            }
            sc_e += (ah - a) * (ah - a);
            sc_s += a * a;
            sc[j] = a * inv_sqrt_d;
            sch[j] = ah * inv_sqrt_d;
            mx = std::max(mx, sc[j]);
            mxh = std::max(mxh, sch[j]);
          }
          double z = 0, zh = 0;
          for (int j = 0; j < nk; ++j) {
            p[j] = std::exp(sc[j] - mx);
            ph[j] = std::exp(sch[j] - mxh);
            z += p[j];
            zh += ph[j];
          }
          const double lz = std::log(z) + mx, lzh = std::log(zh) + mxh;
          std::fill(o.begin(), o.end(), 0.0);
          std::fill(oh.begin(), oh.end(), 0.0);
          double kl = 0;
          for (int j = 0; j < nk; ++j) {
            p[j] /= z;
            ph[j] /= zh;
            kl += p[j] * ((sc[j] - lz) - (sch[j] - lzh));  // log-domain: no log(0)
            const float* vx = vb + size_t(j) * D;
            const float* vh = row(vs, j, qv, D);
            for (int t = 0; t < D; ++t) {
              o[t] += p[j] * vx[t];
              oh[t] += ph[j] * vh[t];
            }
          }
          for (int t = 0; t < D; ++t) {
            o_err += (oh[t] - o[t]) * (oh[t] - o[t]);
            o_norm += o[t] * o[t];
          }
          kld += std::max(kl, 0.0);  // KL >= 0; rounding can give -1e-17
          sink += p[0];
          ++n_q;
          if (nk >= 2) {
            top1 += top_k(p, nk, 1) == top_k(ph, nk, 1) ? 1.0 : 0.0;
            ++n_top1;
          }
          if (nk > 8) {
            const auto a = top_k(p, nk, 8), bb = top_k(ph, nk, 8);
            std::vector<int> both;
            std::set_intersection(a.begin(), a.end(), bb.begin(), bb.end(), std::back_inserter(both));
            top8 += double(both.size()) / 8.0;
            ++n_top8;
          }
        }
      }
      if (progress) progress(++done, size_t(B) * Hkv);
    }
  }
  const double values = double(B) * Hkv * T * D;
  r.k_bits = k_bits / values;
  r.v_bits = v_bits / values;
  r.bits_per_value = 0.5 * (r.k_bits + r.v_bits);
  r.k_rel_mse = k_norm > 0 ? k_err / k_norm : 0.0;
  r.v_rel_mse = v_norm > 0 ? v_err / v_norm : 0.0;
  r.ip_rel_err_random = ipr_s > 0 ? ipr_e / ipr_s : 0.0;
  r.score_rel_err = sc_s > 0 ? sc_e / sc_s : 0.0;
  r.attn_rel_l2 = o_norm > 0 ? std::sqrt(o_err / o_norm) : 0.0;
  r.kld = kld / double(n_q);
  r.top1_agree = n_top1 ? top1 / double(n_top1) : NAN;
  r.top8_agree = n_top8 ? top8 / double(n_top8) : NAN;
  r.sink_mass = sink / double(n_q);
  r.n_queries = n_q;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace tq::eval
