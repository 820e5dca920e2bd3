// src/cuda/decode_v3_params.h — parameters, constants and shared-memory layout of the v3 decode
// kernel (decode_v3.cuh), in plain C++ so that the plan (decode_plan.cpp, g++) sizes and fills them.
#pragma once
#include <cstdint>

#include "cuda/decode_frag.h"
#include "turboquant/layout.h"

namespace tq::cuda::v3 {

constexpr int kChunk = 64;      // tokens per pipeline stage (page_tokens must be a multiple)
constexpr int kConsumers = 4;   // consumer warps, 16 tokens of each chunk each
constexpr int kThreads = 32 * (kConsumers + 1);
constexpr int kMaxStages = 8;
constexpr int kMaxG = 8;        // GQA group = the N = 8 side of the mma
constexpr int kRounds = 3;      // Hadamard rounds (Rotation::kHadamardRounds)

// Bytes per token of the compile-time codec pair (TurboQuant with fp16 norms, single-part or, with
// frac, the 2-part tqB.5 of frag::Groups (B = 1..7), or with prod, tq(B+1)p: B-bit mse codes + D sign bits,
// norm and gamma; with both, tq(B+1).5p: the mse codes of frag::Groups<.., PROD>, D sign bits, per part
// norm and gamma; bits 0 = fp16 pass-through). prod: bit 0 = K, bit 1 = V (any non-zero value here).
// hi_groups: the 32-groups of part 0 (frag::Groups::kHi); bits = part 1's (mse) bits.
constexpr int hi_groups(int d, int bits, int frac, int prod = 0) {
  return frac ? ((prod ? bits + 1 : bits) == 2 ? d / 128 : d / 64) : 0;
}
// bits 0 is fp16 pass-through except for the fractional prod tq1.5p (frac and prod: mse bits 1 / 0).
constexpr int codes_bytes(int d, int bits, int frac = 0, int prod = 0) {
  return bits || (frac && prod) ? d * bits / 8 + 4 * hi_groups(d, bits, frac, prod) + (prod ? d / 8 : 0) : 2 * d;
}
constexpr int norm_bytes(int bits, int frac = 0, int prod = 0) {
  return bits || (frac && prod) ? (frac && prod ? 8 : frac || prod ? 4 : 2) : 0;
}
constexpr int stage_tx(int d, int kb, int vb, int frac = 0, int prod = 0) {
  return kChunk * (codes_bytes(d, kb, frac, prod & 1) + norm_bytes(kb, frac, prod & 1) + codes_bytes(d, vb, frac, prod & 2) +
                   norm_bytes(vb, frac, prod & 2));
}
constexpr int stage_bytes(int d, int kb, int vb, int frac = 0, int prod = 0) {
  return (stage_tx(d, kb, vb, frac, prod) + 127) & ~127;
}
// One ring stage of a kernel instantiation (the producer fills it, the consumers read it): per
// token of the chunk, K codes then K norms, then V codes then V norms (PR: bit 0 = K, bit 1 = V prod).
template <int D, int KB, int VB, int FR, int PR>
struct Stage {
  static constexpr int KCB = codes_bytes(D, KB, FR, PR & 1), KSB = norm_bytes(KB, FR, PR & 1);
  static constexpr int VCB = codes_bytes(D, VB, FR, PR & 2), VSB = norm_bytes(VB, FR, PR & 2);
  static constexpr int VOFF = kChunk * (KCB + KSB);  // V section
  static constexpr int SB = stage_bytes(D, KB, VB, FR, PR);
  static constexpr uint32_t TX = stage_tx(D, KB, VB, FR, PR);  // bytes the bulk copies deliver
};

struct Params {
  const void* q;                 // [B, Hq, D] q_dtype
  void* out;                     // [B, Hq, D] out_dtype
  const uint8_t* k_pool;
  const uint8_t* v_pool;
  const int32_t* page_table;     // [B, max_pages]
  const int32_t* seq_lens;       // [B]
  float* part_o;                 // [grid + B*Hkv][G][D] partial outputs (rotated domain)
  float* part_ml;                // [grid + B*Hkv][G][2] partial (max, sum), log2 domain
  int* counters;                 // [B*Hkv + grid + B*Hkv]: per segment, then per merge group (decode_epilogue.cuh);
                                 // zero between runs (the last arriver resets its own)
  int* error_flag;               // bit 0: a seq_len out of range, bit 1: a page id out of range
  KvPageLayout kl, vl;
  int q_dtype, out_dtype;        // 0 f32, 1 f16, 2 bf16
  int B, Hq, Hkv, G, max_pages, num_pages, max_seq_len, stages;
  int min_chunks;                // floor of chunks per CTA (split policy of the plan)
  float q_scale;                 // softmax scale * log2(e) (/ sqrt(D) for TurboQuant K)
  float out_scale;               // 1 / sqrt(D) for TurboQuant V, 1 for fp16
  uint32_t ktab8[4];             // K centroids as int8 (frag::make_table_i8), QK^T in int8
  float kdeq;                    // int8 K entry * kdeq = c * sqrt(D)
  uint32_t vtab[8];              // fp16 V centroid table (frag::make_table)
  frag::Shifts shifts;           // powers of two, read as run-time values (see frag::Shifts)
  uint32_t ksign[kRounds][8], vsign[kRounds][8];  // Hadamard sign bits (bit set = -1), D <= 256
  // Fractional (2-part) codecs: part 1's tables (part 0 uses ktab8 / kdeq / vtab above) and the
  // rotations as dense matrices, per part p of dim m_p, 1/sqrt(m_p) folded in, blocks one after the
  // other: kproj = R_p^T (q: y_i = sum_j kproj_p[j][i] q_j), vproj = R_p (out_j = sum_i vproj_p[i][j] o_i).
  uint32_t ktab8b[4];
  float kdeqb;
  uint32_t vtabb[8];
  const float* kproj;
  const float* vproj;
  // TurboQuant-prod (one part, m = D; decode_prod.cuh): K: the sketch transposed, ksk[j * D + i] =
  // S[i][j] (the query's sketch S·Rq by dense_part1), and κ·√D (q carries 1/√D); V: κ√D·S^T in tf32
  // A-fragment order (frag::qjl_fold_in: [D/16 m-tiles][D/8 k-steps][32 lanes][4]).
  // Fractional prod (decode_fprod.cuh): ksk = per part p the block κ_p√m_p·S_p^T (m_p x m_p), blocks
  // one after the other, padded with zeros to D x D (the prologue's L1 prefetch reads D x D), kqjl
  // unused; vfold = the block-diagonal κ_p√m_p·S_p^T in the same fragment order (rows: vdim_frac).
  const float* ksk;
  float kqjl;
  const float* vfold;
  // Debug timeline (kernels built with -DTQ_DECODE_TRACE, plan env TQ_CUDA_DECODE_TRACE=file):
  // [grid][kTraceSlots] clock64 stamps relative to the CTA's entry; slot 15 = %globaltimer at entry.
  unsigned long long* trace;
  int drop;                      // stage-dropping variants (-DTQ_DECODE_DROP builds, decode_v3.cuh)
  // Quad V (QV kernels, DecodeShape::v_quads): V pages in token quads (layout.h quad_pos), V centroids as int8.
  uint32_t vtab8[4];
  float vdeq;                    // int8 V entry * vdeq = c * sqrt(D)
  // Wide codecs tq5..tq8 (KB = VB >= 5): fp16 bit patterns of c * sqrt(D), K's 2^KB entries then
  // V's 2^VB (device memory, copied into shared memory by each CTA). Fractional wide tq4.5 .. tq7.5:
  // c * sqrt(D/2) per part, K part 0 (2^(KB+1)), K part 1 (2^KB), V part 0, V part 1.
  const uint16_t* wtab;
};
constexpr int kTraceSlots = 20;

// Shared memory carve-up, shared by the launcher (size) and the kernel.
// qx: floats of a last region (fractional prod: the sketch's per-head, per-part int8 scales and
// sums, decode_fprod.cuh); 0 for every other kernel.
struct Smem {
  uint32_t bars, ok, misc, qsc, prefix, lens, q, scr, scr_ml, qx, total;
};
constexpr int kQxFloats = 4 * kMaxG;  // fractional prod: (scale, sum) per part per head
TQ_HD constexpr Smem smem_layout(int d, int sbytes, int stages, int B, int G, int qx = 0) {
  Smem s{};
  uint32_t off = uint32_t(stages * sbytes);
  s.bars = off; off += 2 * kMaxStages * 8;
  s.ok = off; off += kMaxStages * 4;
  s.misc = off; off += 4 * kMaxG * 4;
  s.qsc = off; off += 4 * kMaxG * 4;  // per head: and part (fractional), or QJL scale and sum (prod)
  s.prefix = off; off += uint32_t(B + 1) * 4;
  s.lens = off; off += uint32_t(B) * 4;
  off = (off + 15u) & ~15u;
  s.q = off; off += kMaxG * d * 4;
  s.scr = off; off += kConsumers * G * d * 4;
  s.scr_ml = off; off += kConsumers * kMaxG * 2 * 4;
  s.qx = off; off += uint32_t(qx) * 4;
  s.total = off;
  return s;
}

// Kernel entry points per head_dim (decode_v3_d*.cu, one decode_v3_table.cuh), nullptr for a (k_bits, v_bits, frac, prod)
// combination without a kernel. Bits 0 = fp16 pass-through; compiled pairs: 0/0, 1/1, 2/2, 3/3, 4/4,
// 3/2, 4/3, 0/3, 0/4 (fp16 K, TurboQuant V), and with frac = 1 (K and V both tqB.5): 1.5/1.5,
// 2.5/2.5 (not at D = 64: its 16-dim part 0 is not a group), 3.5/3.5, 4.5/4.5 .. 7.5/7.5 (fp16
// tables in shared memory, as the wide codecs); with prod = 3 (K and V both
// tq(B+1)p, bits = the mse bits B): 1/1 (tq2p), 2/2 (tq3p), 3/3 (tq4p), 4/4 (tq5p).
// Wide: 5/5, 6/6, 7/7, 8/8 (tq5..tq8, fp16 tables in shared memory).
// qv = 1: V in token quads with PV on int8 (tqB/tqB, B = 2..4; DecodeShape::v_quads).
// Fractional prod (frac = 1, prod = 3; K and V both tq(B+1).5p, bits = part 1's mse bits B): 0/0
// (tq1.5p: part 1 has signs only), 1/1 (tq2.5p, not at D = 64), 2/2 (tq3.5p), 3/3 (tq4.5p), and on the
// fractional wide paths 4/4 (tq5.5p), 5/5 (tq6.5p), 6/6 (tq7.5p), in their own files decode_v3_fprod_d*.cu.
const void* kernel_d64(int k_bits, int v_bits, int frac, int prod, int qv);
const void* kernel_d128(int k_bits, int v_bits, int frac, int prod, int qv);
const void* kernel_d256(int k_bits, int v_bits, int frac, int prod, int qv);
const void* kernel_fprod_d64(int k_bits, int v_bits);
const void* kernel_fprod_d128(int k_bits, int v_bits);
const void* kernel_fprod_d256(int k_bits, int v_bits);
inline const void* find_kernel(int d, int k_bits, int v_bits, int frac = 0, int prod = 0, int qv = 0) {
  if (frac && prod) {
    if (prod != 3 || qv) return nullptr;
    switch (d) {
      case 64: return kernel_fprod_d64(k_bits, v_bits);
      case 128: return kernel_fprod_d128(k_bits, v_bits);
      case 256: return kernel_fprod_d256(k_bits, v_bits);
      default: return nullptr;
    }
  }
  switch (d) {
    case 64: return kernel_d64(k_bits, v_bits, frac, prod, qv);
    case 128: return kernel_d128(k_bits, v_bits, frac, prod, qv);
    case 256: return kernel_d256(k_bits, v_bits, frac, prod, qv);
    default: return nullptr;
  }
}

}  // namespace tq::cuda::v3
