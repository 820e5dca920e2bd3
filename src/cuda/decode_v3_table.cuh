// src/cuda/decode_v3_table.cuh — the compiled v3 decode kernels of one head_dim, by codec pair:
// instantiated once per head_dim in decode_v3_d{64,128,256}.cu (parallel builds). The pairs are
// listed in decode_v3_params.h (kernel_d*).
#pragma once
#include "cuda/decode_v3.cuh"

namespace tq::cuda::v3 {

template <int D>
const void* kernel_table(int kb, int vb, int frac, int prod, int qv) {
#define TQ_RET(...) return reinterpret_cast<const void*>(&decode_kernel<__VA_ARGS__>)
  if (qv) {  // V in token quads, PV on int8 (DecodeShape::v_quads): tqB/tqB
#define TQ_QV(B) if (!frac && !prod && kb == B && vb == B) TQ_RET(D, B, B, 0, 0, 1);
    TQ_QV(2) TQ_QV(3) TQ_QV(4)
#undef TQ_QV
    return nullptr;
  }
#define TQ_CASE(K, V) if (!frac && !prod && kb == K && vb == V) TQ_RET(D, K, V, 0);
  TQ_CASE(0, 0) TQ_CASE(1, 1) TQ_CASE(2, 2) TQ_CASE(3, 3) TQ_CASE(4, 4) TQ_CASE(3, 2) TQ_CASE(4, 3) TQ_CASE(0, 3) TQ_CASE(0, 4)
  TQ_CASE(5, 5) TQ_CASE(6, 6) TQ_CASE(7, 7) TQ_CASE(8, 8)  // wide: fp16 tables in shared memory
#undef TQ_CASE
  // Fractional tqB.5 (K and V): tq2.5 needs D >= 128 (its part 0 of D/4 dims is a whole 32-group);
  // tq1.5 and tq3.5 split D in halves (D/2 >= 32).
  if (frac && !prod && kb == 1 && vb == 1) TQ_RET(D, 1, 1, 1);
  if constexpr (D >= 128)
    if (frac && !prod && kb == 2 && vb == 2) TQ_RET(D, 2, 2, 1);
  if (frac && !prod && kb == 3 && vb == 3) TQ_RET(D, 3, 3, 1);
  // Fractional wide tq4.5 .. tq7.5 (halves at B + 1 and B bits, fp16 tables in shared memory).
#define TQ_FW(B) if (frac && !prod && kb == B && vb == B) TQ_RET(D, B, B, 1);
  TQ_FW(4) TQ_FW(5) TQ_FW(6) TQ_FW(7)
#undef TQ_FW
  // Prod tq(B+1)p (K and V), B = the mse bits (tq5p: 4, the tq4 int8 K and fp16 V paths; tq6p .. tq8p:
  // 5..7, the wide ones).
#define TQ_PROD(B) if (!frac && prod == 3 && kb == B && vb == B) TQ_RET(D, B, B, 0, 3);
  TQ_PROD(1) TQ_PROD(2) TQ_PROD(3) TQ_PROD(4)
  TQ_PROD(5) TQ_PROD(6) TQ_PROD(7)  // tq6p .. tq8p: the wide mse paths (fp16 tables) + the QJL pieces
#undef TQ_PROD
#undef TQ_RET
  return nullptr;
}

// Fractional prod tq(B+1).5p (K and V, bits = part 1's mse bits B): instantiated in their own files
// decode_v3_fprod_d{64,128,256}.cu. tq1.5p (B = 0: part 1 has QJL signs only), tq2.5p (B = 1, needs
// D >= 128, as tq2.5) .. tq4.5p on the int8 paths of tqB.5; tq5.5p .. tq7.5p (B = 4..6) on the
// fractional wide paths (fp16 tables in shared memory).
template <int D>
const void* kernel_fprod_table(int kb, int vb) {
  if (kb != vb) return nullptr;
#define TQ_FP(B) if (kb == B) return reinterpret_cast<const void*>(&decode_kernel<D, B, B, 1, 3>);
  TQ_FP(0)
  if constexpr (D >= 128) TQ_FP(1)
  TQ_FP(2) TQ_FP(3) TQ_FP(4) TQ_FP(5) TQ_FP(6)
#undef TQ_FP
  return nullptr;
}

}  // namespace tq::cuda::v3
