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

  // mse codecs: the batched path (encode_unpacked, then packing); prod: encode_reference.
  void encode(const float* x, size_t n, size_t stride, uint8_t* codes) const override;
  // One vector at a time, double accumulation in the dense rotation: the readable definition the
  // batched path is tested against (bit-identical for Hadamard and identity rotations; for dense
  // rotations the batched path accumulates in fp32 and may put a coordinate within ~1e-6 of a
  // boundary in the neighbouring cell).
  void encode_reference(const float* x, size_t n, size_t stride, uint8_t* codes) const;
  // Batched mse encoding without packing, for indexes that keep their own code layout.
  //   codes: n * dim() bytes; codes[i*dim() + r] = Lloyd-Max index of rotated coordinate r (the
  //          rotated domain: parts concatenated, part p at layout.part[p].first)
  //   norms: n * parts().size() floats; the norm of part p exactly as decode reads it back (after
  //          rounding to the codec's NormType)
  //   dots:  optional, n * parts().size() floats: <ĉ_p, u_p>, the inner product of the unit rotated
  //          part with its centroids (in (0, 1] for nonzero parts; 0 for zero parts). Indexes use
  //          n_p / dots_p as the scale that makes n·<Rq, ĉ> an unbiased inner-product estimate.
  // threads: 0 = the OpenMP default. Output is identical for any thread count. Throws on NaN/Inf or
  // an fp16-overflowing norm (codes/norms/dots may then be partly written: pass scratch buffers);
  // throws for prod codecs.
  void encode_unpacked(const float* x, size_t n, size_t stride, uint8_t* codes, float* norms,
                       int threads = 0, float* dots = nullptr) const;
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
  // Sums of squares of part p of nv <= 8 rows (x: row 0, stride apart) in double, channel order.
  void part_sqnorms(const float* x, size_t nv, size_t stride, size_t p, double* s) const;
  bool norm_ok(double sqnorm) const;  // finite, and within fp16 for fp16 norms
  // Checks every vector (throws naming the first bad one), returns the part norms (n x parts).
  std::vector<double> checked_norms(const float* x, size_t n, size_t stride) const;
  // Rows [0, n) -> unpacked codes + stored norms. norms: from checked_norms, or nullptr to compute
  // them per block (one pass over x); returns false if some vector failed norm_ok (outputs then
  // partly written, the caller throws).
  bool encode_rows(const float* x, size_t n, size_t stride, const double* norms, uint8_t* codes,
                   float* norms_out, int threads, float* dots = nullptr) const;

  TqLayout layout_{};
  std::vector<TqPart> parts_;
  std::vector<std::vector<float>> rot_t_;   // per part: dense rotation transposed, padded (encode_kernels.h)
  std::vector<std::vector<float>> bounds_;  // per part: the codebook's boundaries in fp32
  std::vector<bool> identity_;              // per part: channels are 0..m-1 (no gather needed)
};

}  // namespace tq
