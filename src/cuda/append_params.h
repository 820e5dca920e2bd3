// src/cuda/append_params.h — parameters of the append kernel (append.cuh), plain C++ for the plan.
#pragma once
#include <cstdint>

#include "turboquant/layout.h"

namespace tq::cuda::append {

constexpr int kThreads = 256;      // v1: 8 warps per block
constexpr int kTileWarps = 4;      // v2: warps per block, each encoding its own tile of vectors
constexpr int kRounds = 3;     // Hadamard rounds (Rotation::kHadamardRounds)

// The bit planes of a b-bit code (layout.h plane_widths): n planes of widths w[0..n).
struct Planes {
  int n, w[3];
};
constexpr Planes planes(int bits) {
  Planes p{0, {0, 0, 0}};
  p.n = plane_widths(bits, p.w);
  return p;
}

// tq5..tq8 (v2 kernel; host + device, tested on the CPU): the code of u by binary search over the
// 2^BITS - 1 ascending boundaries b = the number of boundaries below u, as Codebook::quantize
// (strict >, ties to the lower code; NaN: 0).
template <int BITS>
TQ_HD uint32_t search_wide(float u, const float* b) {
  uint32_t c = 0;
  for (int k = BITS - 1; k >= 0; --k)
    if (u > b[c + (1u << k) - 1]) c += 1u << k;
  return c;
}
// Code c of coordinate e (0..31) of a group into the group's BITS words w: each plane's field at
// its plane_pos (layout.h).
template <int BITS>
TQ_HD void pack_code(uint32_t (&w)[BITS], int e, uint32_t c) {
  constexpr Planes PL = planes(BITS);
  int pw = 0, bo = 0;
  for (int p = 0; p < PL.n; ++p) {
    int word = 0;
    const int sh = plane_pos(PL.w[p], e, &word);
    w[pw + word] |= ((c >> bo) & ((1u << PL.w[p]) - 1u)) << sh;
    pw += PL.w[p];
    bo += PL.w[p];
  }
}

struct Params {
  const void* x;                 // [n_tokens, Hkv, D] in_dtype
  const int32_t* slot_mapping;   // [n_tokens] page * page_tokens + offset, < 0 = skip
  uint8_t* pool;                 // pages (KvPageLayout)
  int* error_flag;               // bit 0: slot beyond the pool, bit 1: norm beyond fp16
  KvPageLayout layout;
  int n_tokens, Hkv, num_pages, in_dtype;  // 0 f32, 1 f16, 2 bf16
  int vpw;                       // vectors per warp, 1..32 (v2: a multiple of 32 / (D / 32))
  float bound[15];               // Lloyd-Max boundaries (float, ascending)
  uint32_t sign[kRounds][8];     // Hadamard sign bits (bit set = -1), D <= 256
  const float* wbound;           // tq5..tq8 (v2 only): the 2^B - 1 boundaries (float, ascending) on the device
};

// v1 kernel entry per (head_dim, bits), bits 0 = fp16 pass-through; nullptr if none.
const void* append_kernel_for(int d, int bits);
// v2 (tiled) kernel entry per (head_dim, coordinates per lane 32/64, bits 1..8, in_dtype); nullptr if none.
// (v1 has no tq5..tq8 kernel: its linear count over the boundaries is written for 15 at most.)
const void* append_tile_kernel_for(int d, int c, int bits, int in_dtype);
// The same two writing token quads (layout.h quad_pos; append_quad.cu), bits 1..4.
const void* append_quad_kernel_for(int d, int bits);
const void* append_quad_tile_kernel_for(int d, int c, int bits, int in_dtype);

// v2 geometry: L = D/C lanes per vector (lane q owns coordinates [Cq, Cq+C), C/32 code groups),
// 32/L vectors per pass, a tile of vpw vectors per warp staged in shared memory (rows padded by 16
// bytes), the scale tables and the round-0 sign masks of the input chunks.
constexpr int tile_row_stride(int d, int in_bytes) { return d * in_bytes + 16; }
constexpr int tile_table_bytes(int d, int c) { return 2 * (d / c) * (c + 4) * 4; }  // 2 rounds, +4: banks
constexpr int tile_vpp(int d, int c) { return 32 / (d / c); }  // vectors per pass
constexpr int tile_max_vpw(int d, int c, int in_bytes) {  // ~8 KB of tile per warp, whole passes, <= 32
  const int v = 8192 / (d * in_bytes), vpp = tile_vpp(d, c);
  return v > 32 ? 32 : (v < vpp ? vpp : v / vpp * vpp);
}
constexpr int tile_smem_bytes(int d, int c, int in_bytes, int vpw) {
  return tile_table_bytes(d, c) + d * in_bytes + kTileWarps * vpw * tile_row_stride(d, in_bytes);
}

// ---- fractional codecs tq1.5 .. tq7.5 (append_frac.cuh) -----------------------------------------
// Two parts (TqCodec without calibration): part 0 = channels [0, hi) at bits + 1, part 1 = the rest
// at bits; each its own randomized Hadamard rotation (power-of-two dimension) or, for tq2.5's part 1
// (3/4 of D: 48, 96, 192), a dense one. The plan checks these against the codec's own layout.
struct FracParams {
  const void* x;                 // [n_tokens, Hkv, D] in_dtype
  const int32_t* slot_mapping;   // [n_tokens] page * page_tokens + offset, < 0 = skip
  uint8_t* pool;                 // pages (KvPageLayout)
  int* error_flag;               // bit 0: slot beyond the pool, bit 1: a part norm beyond fp16
  const float* dense;            // dense part 1 (tq2.5), transposed: dense[j * m1 + i] = M[i][j]; else null
  KvPageLayout layout;
  int n_tokens, Hkv, num_pages, in_dtype;
  int vpw;                       // vectors per warp, 1..32
  float bound[2][15];            // per part: Lloyd-Max boundaries (float, ascending)
  uint32_t sign[2][kRounds][8];  // per Hadamard part: sign bits (bit set = -1), part dim <= 256
  const float* wbound;           // parts of 5..8 bits (tq4.5 .. tq7.5): their 2^b - 1 boundaries, part 0's
                                 // then part 1's (float, ascending, on the device); else null
};

constexpr int frac_hi(int d, int bits) { return bits == 2 ? d / 4 : d / 2; }  // CodecSpec::hi_fraction
constexpr bool frac_dense(int d, int bits) {  // part 1 not a power of two: dense rotation
  const int m1 = d - frac_hi(d, bits);
  return (m1 & (m1 - 1)) != 0;
}
constexpr int frac_vd(int d) { return d >= 256 ? 8 : 16; }  // vectors per pass of the dense product
// Shared memory per warp: its tile of vpw rows (as v2, unsigned) and, for a dense part, the pass's
// normalized part-1 inputs u[m1][vd] (fp32).
constexpr int frac_warp_bytes(int d, int bits, int in_bytes, int vpw) {
  return vpw * tile_row_stride(d, in_bytes) + (frac_dense(d, bits) ? (d - frac_hi(d, bits)) * frac_vd(d) * 4 : 0);
}
constexpr int frac_smem_bytes(int d, int bits, int in_bytes, int vpw) {
  return kTileWarps * frac_warp_bytes(d, bits, in_bytes, vpw);
}

// Fractional kernel entry per (head_dim, bits 1 (tq1.5) .. 7 (tq7.5), in_dtype); nullptr if none.
const void* append_frac_kernel_for(int d, int bits, int in_dtype);

// ---- TurboQuant-prod tq2p .. tq8p (append_prod.cuh) ------------------------------------------
// One part: the mse stage at mse_bits = bits - 1 (randomized Hadamard), then the QJL stage on the
// residual: gamma = ||e|| and sign(S e) (S the codec's m x m sketch, passed transposed).
struct ProdParams {
  const void* x;                 // [n_tokens, Hkv, D] in_dtype
  const int32_t* slot_mapping;   // [n_tokens] page * page_tokens + offset, < 0 = skip
  uint8_t* pool;                 // pages (KvPageLayout)
  int* error_flag;               // bit 0: slot beyond the pool, bit 1: norm beyond fp16
  const float* sketch_t;         // [D][D]: sketch_t[j * D + i] = S[i][j]
  KvPageLayout layout;
  int n_tokens, Hkv, num_pages, in_dtype;
  int vpw;                       // vectors per warp, 1..32
  float bound[15];               // mse Lloyd-Max boundaries (float, ascending)
  float cent[16];                // mse centroids (float: the CPU's residual r - c[code])
  uint32_t sign[kRounds][8];     // Hadamard sign bits (bit set = -1)
  const float* wtab;             // 5..7-bit mse codes (tq6p .. tq8p): the 2^b - 1 boundaries, then the 2^b
                                 // centroids (float, on the device); else null
};
// Vectors of one QJL pass: VQ·D/32 double accumulators per lane (32 at most).
constexpr int prod_vq(int d) { return d >= 256 ? 4 : 512 / d; }
// Shared memory per warp: its tile of vpw rows (as v2) and the pass's residuals e[D][VQ] (fp32).
constexpr int prod_warp_bytes(int d, int in_bytes, int vpw) { return vpw * tile_row_stride(d, in_bytes) + d * prod_vq(d) * 4; }
constexpr int prod_smem_bytes(int d, int in_bytes, int vpw) { return kTileWarps * prod_warp_bytes(d, in_bytes, vpw); }

// Prod kernel entry per (head_dim, mse bits 1 (tq2p) .. 7 (tq8p), in_dtype); nullptr if none.
const void* append_prod_kernel_for(int d, int mse_bits, int in_dtype);

// ---- fractional prod tq1.5p .. tq7.5p (append_fprod.cuh) --------------------------------------
// Two parts split as the fractional codecs' (frac_hi of the codec's rate B), each a TurboQuant-prod:
// mse codes at B (part 0) and B - 1 bits (part 1; tq1.5p: none), then the QJL signs of the residual per part with
// the part's own m_p x m_p sketch; scalars (n_0, γ_0, n_1, γ_1). The layout is layout.h's
// (fprod_layout); the plan checks it against the codec's.
struct FprodParams {
  const void* x;                 // [n_tokens, Hkv, D] in_dtype
  const int32_t* slot_mapping;   // [n_tokens] page * page_tokens + offset, < 0 = skip
  uint8_t* pool;                 // pages (KvPageLayout)
  int* error_flag;               // bit 0: slot beyond the pool, bit 1: a part norm beyond fp16
  const float* dense;            // dense part 1 (tq2.5p), transposed: dense[j * m1 + i] = M[i][j]; else null
  const float* sketch_t;         // per part p, S_p transposed (sketch_t_p[j * m_p + i] = S_p[i][j]), part 0's
                                 // block then part 1's
  KvPageLayout layout;
  int n_tokens, Hkv, num_pages, in_dtype;
  int vpw;                       // vectors per warp, 1..32
  float bound[2][15];            // per part: mse Lloyd-Max boundaries (float, ascending)
  float cent[2][16];             // per part: mse centroids (float: the CPU's residual r - c[code])
  uint32_t sign[2][kRounds][8];  // per Hadamard part: sign bits (bit set = -1)
  const float* wtab;             // 5..7-bit mse parts (tq5.5p .. tq7.5p): per such part its 2^b - 1 boundaries
                                 // then its 2^b centroids, part 0's then part 1's (float, on the device); else null
};
// The codec layout of tqB.5p at head_dim d (B = bits): layout.h's, for the kernel's compile-time offsets.
constexpr TqLayout fprod_layout(int d, int bits) {
  const uint32_t dims[2] = {uint32_t(frac_hi(d, bits)), uint32_t(d - frac_hi(d, bits))};
  const uint32_t mse[2] = {uint32_t(bits), uint32_t(bits - 1)};
  return make_tq_layout(2, dims, mse, true, NormType::kFp16);
}
// Shared memory: as the prod kernel's (the tile, then the pass's residuals e[D][VQ]; a dense part 1
// stages its normalized inputs in e's part-1 rows first).
// Kernel entry per (head_dim, the codec's rate B = 1 .. 7 (tq2.5p: 128, 256 only), in_dtype); nullptr if none.
const void* append_fprod_kernel_for(int d, int bits, int in_dtype);

}  // namespace tq::cuda::append
