// src/cuda/decode_qjl_mats.h — the QJL matrices the decode plan (decode_plan.cpp) uploads for the
// prod codecs, host-only C++: here so that the CPU tests (tests/cuda/test_decode_frag.cpp) check
// them against the codec's own sketches without a GPU. Kernel side: decode_prod.cuh (one part) and
// decode_fprod.cuh (fractional prod).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda/decode_frag.h"
#include "turboquant/tq_codec.h"

namespace tq::cuda::v3 {

// K (Params::ksk, read by dense_block as y_i = sum_j a[j m + i] x_j per block): one part: S^T (κ√D
// goes to Params::kqjl); fractional: per part p the block κ_p√m_p S_p^T (m_p x m_p), blocks one after
// the other, padded with zeros to D x D (the kernel's L1 prefetch reads D x D).
inline std::vector<float> qjl_k_sketch(const TqCodec& t, int D) {
  std::vector<float> a(size_t(D) * D, 0.f);
  if (t.parts().size() == 1) {
    const TqPart& part = t.parts()[0];
    for (int i = 0; i < D; ++i)
      for (int j = 0; j < D; ++j) a[size_t(j) * D + i] = part.sketch[size_t(i) * D + j];
    return a;
  }
  size_t off = 0;
  for (const TqPart& part : t.parts()) {
    const int m = part.rot->dim();
    const double c = part.qjl_scale * std::sqrt(double(m));
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < m; ++j) a[off + size_t(j) * m + i] = float(c * part.sketch[size_t(i) * m + j]);
    off += size_t(m) * m;
  }
  return a;
}

// V (Params::vfold): the per-warp fold O += M O2 with M[out][in] = κ_p√m_p S_p[in][out] within part
// p, 0 across parts (one part: κ√D S[in][out]), in the tf32 A-fragment order of prod_v_fold
// ([D/16 m-tiles][D/8 k-steps][32 lanes][4]; rows out = the V mse order of the kernel: vdim_tq
// (vb = mse bits), vdim_wide_rt (wide), vdim_frac_rt (fractional); columns in = qjl_fold_in),
// rounded to tf32 (nearest, ties away).
inline std::vector<float> qjl_v_fold(const TqCodec& t, int D, int vb, bool wide) {
  const auto& parts = t.parts();
  const bool fr = parts.size() == 2;
  auto entry = [&](int out, int in) {
    int first = 0;
    for (const TqPart& part : parts) {
      const int m = part.rot->dim();
      if (out >= first && out < first + m) {
        if (in < first || in >= first + m) return 0.0;
        return part.qjl_scale * std::sqrt(double(m)) * part.sketch[size_t(in - first) * m + (out - first)];
      }
      first += m;
    }
    return 0.0;
  };
  const int hi = fr ? parts[0].rot->dim() / 32 : 0;
  std::vector<float> a(size_t(D) * D);
  for (int mt = 0; mt < D / 16; ++mt)
    for (int ks = 0; ks < D / 8; ++ks)
      for (int lane = 0; lane < 32; ++lane)
        for (int i = 0; i < 4; ++i) {
          const int g = lane >> 2;
          const int out = fr     ? frag::vdim_frac_rt(hi, vb, g, mt, i & 1)
                          : wide ? frag::vdim_wide_rt(D, g, mt, i & 1)
                                 : frag::vdim_tq(D, vb, g, mt, i & 1);
          const int in = frag::qjl_fold_in(ks, lane & 3, i);
          float f = float(entry(out, in));
          uint32_t u;
          std::memcpy(&u, &f, 4);
          u = (u + 0x1000u) & ~0x1FFFu;  // tf32: 10 mantissa bits, the magnitude rounded half away
          std::memcpy(&f, &u, 4);
          a[((size_t(mt) * (D / 8) + ks) * 32 + lane) * 4 + i] = f;
        }
  return a;
}

}  // namespace tq::cuda::v3
