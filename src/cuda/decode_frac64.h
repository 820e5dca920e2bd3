// src/cuda/decode_frac64.h — decode attention for tq2.5 / tq2.5p at head_dim 64 (parts of 16 + 48
// dims, an 18-byte codes section): CUDA cores, fp32 scores, three launches like the v1 kernels
// (decode_kernels.cuh), kernels in decode_frac64.cu. Plain C++ for the plan; the unpacking helpers
// are host + device (tests/cuda/test_decode_frag.cpp checks them against TqCodec on the CPU).
//
// The v3 tensor-core kernel cannot take these codecs: it keeps every 32-code group, k32-chunk of
// the int8 K mma and every rotation inside one part, and reads word-aligned rows; here part 0 is 16
// codes (a tail, packed densely) and rows are 18 bytes apart. This path is exact (fp32) and slow:
// one thread per token for the scores, one per coordinate for V, codes unpacked bit by bit.
//   q prologue (frac64_q): per part r_p = R_p q_p (16-dim randomized Hadamard, 48-dim dense), the
//       softmax scale folded in; prod: also s_p = S_p r_p
//   split (frac64_split): score = sum_p n_p (<r_p, c_p[code]> + kappa_p gamma_p <s_p, sigma_p>),
//       online softmax per split, O_p += p n_p c_p[code] (prod: O2_p += p n_p gamma_p sigma)
//   merge (frac64_merge): log-sum-exp merge of the splits, prod: O_p += kappa_p S_p^T O2_p, then
//       x_p = R_p^T O_p, written in the output dtype
#pragma once
#include <stdint.h>

#include "cuda/append_frac64.h"
#include "turboquant/layout.h"

namespace tq::cuda::frac64 {

constexpr int kD = 64, kM0 = 16, kM1 = 48;
constexpr int kThreads = 64;  // threads per block: tokens per tile, coordinates
constexpr int kTile = 64;

// Per codec (K or V), on the device.
struct Tables {
  float cent0[8], cent1[4];        // mse centroids (float), part 0 / part 1 (ascending; unused tail zero)
  float sign0[3][kM0];             // part 0 Hadamard signs (±1) per round
  float m1[kM1 * kM1];             // part 1 dense rotation, row-major M[i][j] (fp32)
  float s0[kM0 * kM0];             // prod: sketches, row-major S[i][j]
  float s1[kM1 * kM1];
  float kappa0, kappa1;            // prod: qjl_kappa(16), qjl_kappa(48)
  float pad_[2];
};

// The code of coordinate j (< m) of a part packed at byte `off` of an 18-byte codes section
// (b bits; layout.h: a 32-code group in planes, then the dense tail).
TQ_HD uint32_t code_at(const uint8_t* row, int off, int m, int b, int j) {
  return unpack_code_ref(row + off, uint32_t(m), b, uint32_t(j));
}

struct Launch {
  int prod, max_group;        // max_group 4 or 8
  int q_dtype, out_dtype;     // 0 f32, 1 f16, 2 bf16
  const void* q; void* out;
  const uint8_t* k_pool; const uint8_t* v_pool;
  const int32_t* page_table; const int32_t* seq_lens;
  const Tables* kt; const Tables* vt;  // device
  float* q_rot; float* part_o; float* part_ml; int* error_flag;  // workspace
  KvPageLayout kl, vl;
  int B, Hq, Hkv, max_pages, num_pages, max_seq_len, splits, chunk;
  float scale;
  void* stream;
};
// Floats per row of q_rot and of a partial output: 64 (mse) or 128 (prod: r, then s / O, then O2).
constexpr int row_floats(bool prod) { return prod ? 2 * kD : kD; }
int blocks_per_sm(bool prod, int max_group);
int run(const Launch& a);  // the three launches; returns cudaError_t

}  // namespace tq::cuda::frac64

#if !defined(__CUDACC__)
// Host: the tables of a codec (plan and CPU tests); the codec must pass append::frac64_check.
#include <algorithm>
#include <cstring>

#include "turboquant/tq_codec.h"

namespace tq::cuda::frac64 {
inline void make_tables(const TqCodec& t, bool prod, Tables& T) {
  std::memset(&T, 0, sizeof T);
  const auto& c0 = t.parts()[0].cb->centroids_f32();
  const auto& c1 = t.parts()[1].cb->centroids_f32();
  for (size_t i = 0; i < c0.size() && i < 8; ++i) T.cent0[i] = c0[i];
  for (size_t i = 0; i < c1.size() && i < 4; ++i) T.cent1[i] = c1[i];
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < kM0; ++i) T.sign0[r][i] = t.parts()[0].rot->signs(r)[size_t(i)];
  const std::vector<float>& M = t.parts()[1].rot->matrix();  // row-major M[i][j]
  std::copy_n(M.begin(), kM1 * kM1, T.m1);
  if (prod) {
    std::copy_n(t.parts()[0].sketch.begin(), kM0 * kM0, T.s0);
    std::copy_n(t.parts()[1].sketch.begin(), kM1 * kM1, T.s1);
    T.kappa0 = float(t.parts()[0].qjl_scale);
    T.kappa1 = float(t.parts()[1].qjl_scale);
  }
}
}  // namespace tq::cuda::frac64
#endif  // !__CUDACC__
