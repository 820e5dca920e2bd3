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

#include "core/encode_kernels.h"
#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/pack.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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

// The value decode will read back for v stored as type t.
float stored_value(NormType t, double v) {
  uint8_t tmp[4];
  store_scalar(tmp, t, v);
  return load_scalar(tmp, t);
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
  // Batched encoder tables: the dense matrix transposed (so one of its rows is a contiguous run of
  // output columns) and the boundaries in fp32, the values Codebook::quantize compares against.
  for (const TqPart& part : parts_) {
    const int m = part.rot->dim();
    std::vector<float> mt;
    if (part.rot->kind() == RotationKind::kDense) {
      const int ldm = kernels::padded_cols(m);
      mt.assign(size_t(m) * ldm, 0.f);
      const auto& M = part.rot->matrix();
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < m; ++j) mt[size_t(j) * ldm + i] = M[size_t(i) * m + j];
    }
    rot_t_.push_back(std::move(mt));
    bool ident = true;
    for (int j = 0; j < m; ++j) ident = ident && part.channels[j] == j;
    identity_.push_back(ident);
    const auto& t = part.cb->boundaries();
    bounds_.emplace_back(t.begin(), t.end());
  }
}

void TqCodec::part_sqnorms(const float* x, size_t nv, size_t stride, size_t p, double* s) const {
  // Squared norms in double, summed in channel order exactly like encode_reference (so the stored
  // norms are the same bytes); eight vectors at a time so the eight dependency chains overlap.
  constexpr size_t kV = 8;
  const std::vector<int>& ch = parts_[p].channels;
  const int m = int(ch.size());
  if (nv == kV) {
    // Eight named chains the compiler keeps in registers; rows read in step.
    const float* r[kV];
    for (size_t v = 0; v < kV; ++v) r[v] = x + v * stride;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    auto sq = [](float f) { const double e = f; return e * e; };
    if (identity_[p]) {
      for (int j = 0; j < m; ++j) {
        s0 += sq(r[0][j]); s1 += sq(r[1][j]); s2 += sq(r[2][j]); s3 += sq(r[3][j]);
        s4 += sq(r[4][j]); s5 += sq(r[5][j]); s6 += sq(r[6][j]); s7 += sq(r[7][j]);
      }
    } else {
      for (int j = 0; j < m; ++j) {
        const int c = ch[j];
        s0 += sq(r[0][c]); s1 += sq(r[1][c]); s2 += sq(r[2][c]); s3 += sq(r[3][c]);
        s4 += sq(r[4][c]); s5 += sq(r[5][c]); s6 += sq(r[6][c]); s7 += sq(r[7][c]);
      }
    }
    s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3; s[4] = s4; s[5] = s5; s[6] = s6; s[7] = s7;
  } else {
    for (size_t v = 0; v < nv; ++v) {
      s[v] = 0;
      for (int c : ch) {
        const double e = x[v * stride + c];
        s[v] += e * e;
      }
    }
  }
}

bool TqCodec::norm_ok(double sqnorm) const {
  // A sum of float squares in double cannot overflow for d <= 65536, so a non-finite sum means a
  // non-finite input value.
  return std::isfinite(sqnorm) && (spec_.norm != NormType::kFp16 || std::sqrt(sqnorm) < 65504.0);
}

std::vector<double> TqCodec::checked_norms(const float* x, size_t n, size_t stride) const {
  TQ_CHECK_ARG(stride >= size_t(d_), "encode: stride {} < dimension {}", stride, d_);
  const size_t np = parts_.size();
  std::vector<double> norms(n * np);
  constexpr size_t kV = 8;
  for (size_t i0 = 0; i0 < n; i0 += kV) {
    const size_t nv = std::min(kV, n - i0);
    for (size_t p = 0; p < np; ++p) {
      double s[kV];
      part_sqnorms(x + i0 * stride, nv, stride, p, s);
      for (size_t v = 0; v < nv; ++v) {
        const size_t i = i0 + v;
        if (!std::isfinite(s[v])) {
          for (int j = 0; j < d_; ++j)
            TQ_CHECK_ARG(std::isfinite(x[i * stride + j]), "encode: vector {} has a non-finite value at coordinate {}",
                         i, j);
        }
        const double nrm = std::sqrt(s[v]);
        TQ_CHECK_ARG(spec_.norm != NormType::kFp16 || nrm < 65504.0,
                     "encode: vector {} has norm {:.4g}, beyond fp16 norms (use :norm=fp32)", i, nrm);
        norms[i * np + p] = nrm;
      }
    }
  }
  return norms;
}

bool TqCodec::encode_rows(const float* x, size_t n, size_t stride, const double* norms, uint8_t* codes,
                          float* norms_out, int threads, float* dots) const {
  // Blocks of kRows vectors; per block and part: gather + normalize (u = x_S * float(1/||x_S||), as
  // in encode_reference), rotate (dense: one matrix product for the block), quantize.
  constexpr size_t kRows = 64;
  const size_t np = parts_.size();
  const size_t n_blocks = (n + kRows - 1) / kRows;
  int nt = 1;
#ifdef _OPENMP
  nt = threads > 0 ? threads : omp_get_max_threads();
  if (n < 2 * kRows) nt = 1;
#endif
  (void)threads;
  bool ok = true;
#pragma omp parallel num_threads(nt) reduction(&& : ok)
  {
    std::vector<float> u(kRows * size_t(d_)), y(kRows * size_t(kernels::padded_cols(d_)));
    std::vector<uint8_t> q(y.size());
    std::vector<double> own(norms ? 0 : kRows * np);  // this block's norms when not given
#pragma omp for schedule(static)
    for (size_t b = 0; b < n_blocks; ++b) {
      const size_t r0 = b * kRows, rows = std::min(kRows, n - r0);
      const double* bn = norms ? norms + r0 * np : own.data();  // bn[r * np + p]
      if (!norms) {
        // Norms of the block while its rows are in cache: one pass over the input, not two.
        constexpr size_t kV = 8;
        double s[kV];
        for (size_t v0 = 0; v0 < rows; v0 += kV) {
          const size_t nv = std::min(kV, rows - v0);
          for (size_t p = 0; p < np; ++p) {
            part_sqnorms(x + (r0 + v0) * stride, nv, stride, p, s);
            for (size_t v = 0; v < nv; ++v) {
              ok = ok && norm_ok(s[v]);
              own[(v0 + v) * np + p] = norm_ok(s[v]) ? std::sqrt(s[v]) : 0.0;
            }
          }
        }
      }
      for (size_t p = 0; p < np; ++p) {
        const TqPart& part = parts_[p];
        const int m = int(layout_.part[p].dim);
        const uint32_t first = layout_.part[p].first;
        for (size_t r = 0; r < rows; ++r) {
          const size_t i = r0 + r;
          const float* xi = x + i * stride;
          float* ur = &u[r * m];
          const double nrm = bn[r * np + p];
          const float inv = nrm > 0 ? float(1.0 / nrm) : 1.0f;  // x * 1.0f == x: the zero vector
          if (identity_[p]) {
            for (int j = 0; j < m; ++j) ur[j] = xi[j] * inv;
          } else {
            for (int j = 0; j < m; ++j) ur[j] = xi[part.channels[j]] * inv;
          }
          norms_out[i * np + p] = stored_value(layout_.norm_type, nrm);
        }
        const float* rotated = u.data();
        size_t ys = size_t(m);
        if (part.rot->kind() == RotationKind::kDense) {
          ys = size_t(kernels::padded_cols(m));
          kernels::matmul_rows(u.data(), rows, size_t(m), rot_t_[p].data(), m, y.data(), ys);
          rotated = y.data();
        } else {
          for (size_t r = 0; r < rows; ++r) part.rot->forward(&u[r * m], &y[r * m]);
          rotated = y.data();
        }
        // One call for the block (padded rows: the padding is quantized too, whole vectors, and dropped).
        kernels::quantize(rotated, rows * ys, bounds_[p].data(), int(bounds_[p].size()), q.data());
        for (size_t r = 0; r < rows; ++r)
          std::memcpy(codes + (r0 + r) * size_t(d_) + first, &q[r * ys], size_t(m));
        if (dots) {
          // Four chains: one chain of dependent double adds was a sixth of the indexing time.
          const float* c = part.cb->centroids_f32().data();
          for (size_t r = 0; r < rows; ++r) {
            const uint8_t* qr = &q[r * ys];
            const float* yr = rotated + r * ys;
            double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            int j = 0;
            for (; j + 4 <= m; j += 4) {
              a0 += double(c[qr[j]]) * yr[j];
              a1 += double(c[qr[j + 1]]) * yr[j + 1];
              a2 += double(c[qr[j + 2]]) * yr[j + 2];
              a3 += double(c[qr[j + 3]]) * yr[j + 3];
            }
            for (; j < m; ++j) a0 += double(c[qr[j]]) * yr[j];
            dots[(r0 + r) * np + p] = float((a0 + a1) + (a2 + a3));
          }
        }
      }
    }
  }
  return ok;
}

void TqCodec::encode_unpacked(const float* x, size_t n, size_t stride, uint8_t* codes, float* norms,
                              int threads, float* dots) const {
  TQ_CHECK_ARG(!prod(), "encode_unpacked: codec '{}' has a QJL stage (mse codecs only)", spec_.name());
  TQ_CHECK_ARG(stride >= size_t(d_), "encode: stride {} < dimension {}", stride, d_);
  // One pass: norms are computed per block inside encode_rows. On a bad vector, checked_norms
  // finds the first one and throws with its index (the outputs are partly written then).
  if (!encode_rows(x, n, stride, nullptr, codes, norms, threads, dots)) {
    (void)checked_norms(x, n, stride);
    TQ_FAIL(kInternal, "encode: a vector failed the norm check but checked_norms found none");
  }
}

void TqCodec::encode(const float* x, size_t n, size_t stride, uint8_t* codes) const {
  if (prod()) { encode_reference(x, n, stride, codes); return; }
  const std::vector<double> nrm = checked_norms(x, n, stride);  // validates all before writing
  const size_t np = parts_.size(), cs = code_size();
  constexpr size_t kChunk = 4096;  // bounds the unpacked scratch
  std::vector<uint8_t> idx(std::min(n, kChunk) * size_t(d_));
  std::vector<float> nout(std::min(n, kChunk) * np);
  for (size_t i0 = 0; i0 < n; i0 += kChunk) {
    const size_t rows = std::min(kChunk, n - i0);
    encode_rows(x + i0 * stride, rows, stride, nrm.data() + i0 * np, idx.data(), nout.data(), 0);
    for (size_t r = 0; r < rows; ++r) {
      uint8_t* out = codes + (i0 + r) * cs;
      std::memset(out, 0, cs);
      for (size_t p = 0; p < np; ++p) {
        const TqPartLayout& pl = layout_.part[p];
        pack_codes(&idx[r * d_ + pl.first], pl.dim, int(pl.mse_bits), out + pl.mse_offset);
        store_scalar(out + codes_bytes_ + pl.norm_offset, layout_.norm_type, nrm[(i0 + r) * np + p]);
      }
    }
  }
}

void TqCodec::encode_reference(const float* x, size_t n, size_t stride, uint8_t* codes) const {
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
