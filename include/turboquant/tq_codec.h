// turboquant/tq_codec.h — the TurboQuant codec (mse and prod, fractional rates) and the hooks that
// fused attention kernels use to work in the rotated domain without decoding vectors.
#pragma once
#include <memory>
#include <vector>

#include "turboquant/codebook.h"
#include "turboquant/codec.h"
#include "turboquant/rotation.h"

namespace tq {

// One TurboQuant instance over a subset of the channels.
struct TqPart {
  std::vector<int> channels;               // original channel indices, ascending
  std::shared_ptr<const Rotation> rot;     // dim = channels.size()
  const Codebook* cb = nullptr;            // Lloyd-Max for (dim, mse_bits)
  std::vector<float> sketch;               // prod: S (dim x dim, row-major); empty for mse
  double qjl_scale = 0;                    // prod: kappa with  x̂ = ĉ + kappa * gamma * S^T sign(S r)
};

// QJL reconstruction constant for an m x m sketch with Haar-orthogonal rows (see tq_codec.cpp).
double qjl_kappa(int m);

class TqCodec final : public Codec {
 public:
  TqCodec(const CodecSpec& spec, int d, const float* calib, size_t n_calib);

  void encode(const float* x, size_t n, size_t stride, uint8_t* codes) const override;
  void decode(const uint8_t* codes, size_t n, float* y, size_t stride) const override;
  const TqLayout* tq_layout() const override { return &layout_; }

  const std::vector<TqPart>& parts() const { return parts_; }
  bool prod() const { return layout_.prod != 0; }

  // ---- rotated domain (concatenation of the parts; part p at [layout.part[p].first, +dim)) ----
  // r = [R_p x_p]_p (gather the part's channels, rotate; no normalization).
  void rotate(const float* x, float* r) const;
  // x = inverse of rotate (scatter back to original channel order).
  void unrotate(const float* r, float* x) const;
  // prod: s = [S_p r_p]_p, the query's sketch used to score QJL signs.
  void sketch(const float* r, float* s) const;
  // prod: r += [S_p^T s_p]_p (V accumulated in the sketch domain, mapped back once).
  void unsketch_add(const float* s, float* r) const;

  // Decodes one vector into the rotated domain, norms applied: r̂ = Σ_p n_p (ĉ_p + κ_p γ_p S_p^T σ_p).
  void decode_rotated(const uint8_t* code, float* r) const;
  // Reads norm / gamma of part p from an encoded vector's scalars section.
  float norm(const uint8_t* scalars, int p) const;
  float gamma(const uint8_t* scalars, int p) const;

  // Sum over channels of the calibration mean square, used to pick outliers (exposed for tests).
  static std::vector<int> pick_outliers(const float* calib, size_t n, int d, int n_hi);

 private:
  TqLayout layout_{};
  std::vector<TqPart> parts_;
};

}  // namespace tq
