// src/core/tq_codec.cpp — TurboQuant-mse / -prod with fractional rates by channel split.
//
// Per part p (channels S_p, dimension m):
//   encode: n = ||x_S||, u = x_S / n, r = R u, code_i = argmin_j |r_i - c_j| (Lloyd-Max for Beta(m))
//   prod:   the mse stage uses b-1 bits; e = r - ĉ, gamma = ||e||, sigma = sign(S e) (S Haar, m x m)
//   decode: x_S = n R^T (ĉ + kappa gamma S^T sigma)
// The QJL constant: for a row s uniform on the unit sphere, E[<q,s> sign(<s,e>)] = c_m <q, e/|e|>
// with c_m = E|u_1| = Γ(m/2) / (sqrt(pi) Γ((m+1)/2)). S has m such rows (orthonormal), so
// E[<q, S^T sign(S e)>] = m c_m <q, e>/|e|  and  kappa = 1 / (m c_m)  makes the estimate unbiased.
// (For a Gaussian S with N(0,1) entries, E|g| = sqrt(2/pi) gives the paper's kappa = sqrt(pi/2)/m.)
#include "turboquant/tq_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/pack.h"

namespace tq {
namespace {

constexpr uint64_t kPartSeedMix = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kSketchSeedMix = 0xD1B54A32D192ED03ull;

void store_scalar(uint8_t* p, NormType t, double v) {
  if (t == NormType::kFp32) {
    const float f = float(v);
    std::memcpy(p, &f, 4);
  } else {
    const uint16_t h = float_to_half(float(v));
    std::memcpy(p, &h, 2);
  }
}

float load_scalar(const uint8_t* p, NormType t) {
  if (t == NormType::kFp32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

}  // namespace

double qjl_kappa(int m) {
  // 1 / (m * E|u_1|),  E|u_1| = Γ(m/2) / (sqrt(pi) Γ((m+1)/2)).
  const double log_c = std::lgamma(0.5 * m) - 0.5 * std::log(3.14159265358979323846) - std::lgamma(0.5 * (m + 1));
  return 1.0 / (double(m) * std::exp(log_c));
}

std::vector<int> TqCodec::pick_outliers(const float* calib, size_t n, int d, int n_hi) {
  std::vector<double> ms(d, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) ms[j] += double(calib[i * d + j]) * calib[i * d + j];
  std::vector<int> idx(d);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return ms[a] > ms[b]; });
  idx.resize(n_hi);
  std::sort(idx.begin(), idx.end());
  return idx;
}

TqCodec::TqCodec(const CodecSpec& spec, int d, const float* calib, size_t n_calib) : Codec(spec, d) {
  TQ_CHECK_ARG(spec.is_turboquant(), "TqCodec needs a TurboQuant spec, got '{}'", spec.name());
  TQ_CHECK_ARG(d >= 2, "codec '{}': dimension must be >= 2, got {}", spec.name(), d);
  TQ_CHECK_ARG(d <= (1 << 16), "codec '{}': dimension {} too large (max 65536)", spec.name(), d);
  const bool prod = spec.id == CodecId::kTqProd;
  const int min_bits = prod ? 1 : 1;
  TQ_CHECK_ARG(spec.bits >= min_bits && spec.bits <= 8, "codec '{}': unsupported bits {}", spec.name(), spec.bits);

  std::vector<std::vector<int>> channels;
  std::vector<int> bits;
  if (spec.fractional) {
    const int n_hi = int(std::lround(d * spec.hi_fraction));
    TQ_CHECK_ARG(n_hi >= 2 && d - n_hi >= 2,
                 "codec '{}': dimension {} too small to split into outlier and regular channels", spec.name(), d);
    TQ_CHECK_ARG(spec.bits + 1 <= 8, "codec '{}': outlier part would need {} bits", spec.name(), spec.bits + 1);
    std::vector<int> hi;
    if (calib && n_calib > 0) {
      hi = pick_outliers(calib, n_calib, d, n_hi);
    } else {
      hi.resize(n_hi);
      std::iota(hi.begin(), hi.end(), 0);
    }
    std::vector<int> lo;
    for (int j = 0, k = 0; j < d; ++j) {
      if (k < n_hi && hi[k] == j) { ++k; continue; }
      lo.push_back(j);
    }
    channels = {hi, lo};
    bits = {spec.bits + 1, spec.bits};
  } else {
    std::vector<int> all(d);
    std::iota(all.begin(), all.end(), 0);
    channels = {all};
    bits = {spec.bits};
  }

  uint32_t dims[kMaxParts] = {0, 0}, mse_bits[kMaxParts] = {0, 0};
  for (size_t p = 0; p < channels.size(); ++p) {
    TqPart part;
    part.channels = channels[p];
    const int m = int(part.channels.size());
    const uint64_t seed = spec.seed + kPartSeedMix * (p + 1);
    part.rot = Rotation::create(spec.rotation, m, seed);
    const int mb = prod ? bits[p] - 1 : bits[p];
    part.cb = &Codebook::get(m, mb);
    if (prod) {
      Rng rng(seed ^ kSketchSeedMix);
      const std::vector<double> s = haar_orthogonal(m, rng);
      part.sketch.assign(s.begin(), s.end());
      part.qjl_scale = qjl_kappa(m);
    }
    dims[p] = uint32_t(m);
    mse_bits[p] = uint32_t(mb);
    parts_.push_back(std::move(part));
  }
  layout_ = make_tq_layout(uint32_t(parts_.size()), dims, mse_bits, prod, spec.norm);
  codes_bytes_ = layout_.codes_bytes;
  scalar_bytes_ = layout_.scalar_bytes;
}

void TqCodec::encode(const float* x, size_t n, size_t stride, uint8_t* codes) const {
  TQ_CHECK_ARG(stride >= size_t(d_), "encode: stride {} < dimension {}", stride, d_);
  // Validate everything first: a failed call writes nothing.
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * stride;
    for (int j = 0; j < d_; ++j)
      TQ_CHECK_ARG(std::isfinite(xi[j]), "encode: vector {} has a non-finite value at coordinate {}", i, j);
    if (spec_.norm == NormType::kFp16) {
      for (const auto& part : parts_) {
        double s = 0;
        for (int c : part.channels) s += double(xi[c]) * xi[c];
        TQ_CHECK_ARG(std::sqrt(s) < 65504.0, "encode: vector {} has norm {:.4g}, beyond fp16 norms (use :norm=fp32)",
                     i, std::sqrt(s));
      }
    }
  }
  const size_t cs = code_size();
  std::vector<float> buf(d_), res(d_), sk(d_);
  std::vector<uint8_t> idx(d_);
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * stride;
    uint8_t* out = codes + i * cs;
    std::memset(out, 0, cs);
    uint8_t* scal = out + codes_bytes_;
    for (size_t p = 0; p < parts_.size(); ++p) {
      const TqPart& part = parts_[p];
      const TqPartLayout& pl = layout_.part[p];
      const int m = int(pl.dim);
      double s = 0;
      for (int j = 0; j < m; ++j) {
        buf[j] = xi[part.channels[j]];
        s += double(buf[j]) * buf[j];
      }
      const double norm = std::sqrt(s);
      if (norm > 0) {
        const float inv = float(1.0 / norm);
        for (int j = 0; j < m; ++j) buf[j] *= inv;
      }
      part.rot->forward(buf.data(), buf.data());
      for (int j = 0; j < m; ++j) idx[j] = uint8_t(part.cb->quantize(buf[j]));
      pack_codes(idx.data(), uint32_t(m), int(pl.mse_bits), out + pl.mse_offset);
      store_scalar(scal + pl.norm_offset, layout_.norm_type, norm);
      if (layout_.prod) {
        const auto& c = part.cb->centroids_f32();
        double g = 0;
        for (int j = 0; j < m; ++j) {
          res[j] = buf[j] - c[idx[j]];
          g += double(res[j]) * res[j];
        }
        for (int r = 0; r < m; ++r) {  // sign(S e)
          double acc = 0;
          const float* row = &part.sketch[size_t(r) * m];
          for (int j = 0; j < m; ++j) acc += double(row[j]) * res[j];
          idx[r] = acc >= 0 ? 1 : 0;
        }
        pack_codes(idx.data(), uint32_t(m), 1, out + pl.qjl_offset);
        store_scalar(scal + pl.gamma_offset, layout_.norm_type, norm > 0 ? std::sqrt(g) : 0.0);
      }
    }
  }
}

void TqCodec::decode_rotated(const uint8_t* code, float* r) const {
  std::vector<uint8_t> idx(d_);
  const uint8_t* scal = code + codes_bytes_;
  for (size_t p = 0; p < parts_.size(); ++p) {
    const TqPart& part = parts_[p];
    const TqPartLayout& pl = layout_.part[p];
    const int m = int(pl.dim);
    float* rp = r + pl.first;
    const float norm = load_scalar(scal + pl.norm_offset, layout_.norm_type);
    unpack_codes(code + pl.mse_offset, uint32_t(m), int(pl.mse_bits), idx.data());
    const auto& c = part.cb->centroids_f32();
    for (int j = 0; j < m; ++j) rp[j] = c[idx[j]];
    if (layout_.prod) {
      const float g = load_scalar(scal + pl.gamma_offset, layout_.norm_type);
      unpack_codes(code + pl.qjl_offset, uint32_t(m), 1, idx.data());
      const double k = part.qjl_scale * g;
      for (int j = 0; j < m; ++j) {  // += kappa gamma S^T sigma
        double acc = 0;
        for (int rr = 0; rr < m; ++rr) acc += double(part.sketch[size_t(rr) * m + j]) * (idx[rr] ? 1.0 : -1.0);
        rp[j] += float(k * acc);
      }
    }
    for (int j = 0; j < m; ++j) rp[j] *= norm;
  }
}

void TqCodec::decode(const uint8_t* codes, size_t n, float* y, size_t stride) const {
  TQ_CHECK_ARG(stride >= size_t(d_), "decode: stride {} < dimension {}", stride, d_);
  std::vector<float> r(d_);
  for (size_t i = 0; i < n; ++i) {
    decode_rotated(codes + i * code_size(), r.data());
    unrotate(r.data(), y + i * stride);
  }
}

void TqCodec::rotate(const float* x, float* r) const {
  std::vector<float> buf(d_);
  for (size_t p = 0; p < parts_.size(); ++p) {
    const TqPart& part = parts_[p];
    const int m = int(part.channels.size());
    for (int j = 0; j < m; ++j) buf[j] = x[part.channels[j]];
    part.rot->forward(buf.data(), r + layout_.part[p].first);
  }
}

void TqCodec::unrotate(const float* r, float* x) const {
  std::vector<float> buf(d_);
  for (size_t p = 0; p < parts_.size(); ++p) {
    const TqPart& part = parts_[p];
    const int m = int(part.channels.size());
    part.rot->inverse(r + layout_.part[p].first, buf.data());
    for (int j = 0; j < m; ++j) x[part.channels[j]] = buf[j];
  }
}

void TqCodec::sketch(const float* r, float* s) const {
  TQ_CHECK_ARG(prod(), "sketch: codec '{}' has no QJL stage", spec_.name());
  for (size_t p = 0; p < parts_.size(); ++p) {
    const TqPart& part = parts_[p];
    const int m = int(part.channels.size());
    const float* rp = r + layout_.part[p].first;
    for (int i = 0; i < m; ++i) {
      double acc = 0;
      for (int j = 0; j < m; ++j) acc += double(part.sketch[size_t(i) * m + j]) * rp[j];
      s[layout_.part[p].first + i] = float(acc);
    }
  }
}

void TqCodec::unsketch_add(const float* s, float* r) const {
  TQ_CHECK_ARG(prod(), "unsketch_add: codec '{}' has no QJL stage", spec_.name());
  for (size_t p = 0; p < parts_.size(); ++p) {
    const TqPart& part = parts_[p];
    const int m = int(part.channels.size());
    const float* sp = s + layout_.part[p].first;
    for (int j = 0; j < m; ++j) {
      double acc = 0;
      for (int i = 0; i < m; ++i) acc += double(part.sketch[size_t(i) * m + j]) * sp[i];
      r[layout_.part[p].first + j] += float(acc);
    }
  }
}

float TqCodec::norm(const uint8_t* scalars, int p) const {
  return load_scalar(scalars + layout_.part[p].norm_offset, layout_.norm_type);
}
float TqCodec::gamma(const uint8_t* scalars, int p) const {
  return layout_.prod ? load_scalar(scalars + layout_.part[p].gamma_offset, layout_.norm_type) : 0.f;
}

}  // namespace tq
