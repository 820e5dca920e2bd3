// src/cuda/decode_ptx.cuh — the PTX wrappers and element conversions of the v3 decode kernel
// (decode_v3.cuh): mbarriers and bulk copies (Hopper TMA without a tensor map), movmatrix, the
// f16 and s8 mma.sync shapes, ex2, and loads / stores of q and out in fp32 / fp16 / bf16.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstddef>
#include <cstdint>

namespace tq::cuda::v3 {

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n .reg .pred p;\n"
      "WAIT:\n mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n @!p bra WAIT;\n}\n" ::"r"(smem_u32(bar)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                   smem_u32(dst)),
               "l"(src), "r"(bytes), "r"(smem_u32(bar))
               : "memory");
}
// B fragments of an int8 mma from a row of integer-valued floats: out[kc][r] byte i =
// int8(row[dim(kc, 4r + i)]) (dim: the coordinate order of the A side), all zero when !on (the
// group's padding heads).
template <int NC, class Dim>
__device__ __forceinline__ void pack_i8_frags(const float* row, bool on, Dim dim, uint32_t (&out)[NC][2]) {
#pragma unroll
  for (int kc = 0; kc < NC; ++kc)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      uint32_t w = 0;
#pragma unroll
      for (int i = 0; i < 4; ++i) w |= uint32_t(uint8_t(int8_t(int(row[dim(kc, 4 * r + i)])))) << (8 * i);
      out[kc][r] = on ? w : 0u;
    }
}
// Atomic add at gpu scope with acquire + release semantics (the split-KV publish / merge handshake).
__device__ __forceinline__ int atom_add_acq_rel(int* p, int v) {
  int r;
  asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], %2;" : "=r"(r) : "l"(p), "r"(v) : "memory");
  return r;
}
__device__ __forceinline__ uint32_t movm(uint32_t x) {
  uint32_t r;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(r) : "r"(x));
  return r;
}
// fp32-accumulating mma of the given shape and input types (4 A registers, 2 B registers).
#define TQ_MMA_F32(SHAPE_TYPES)                                                                   \
  asm volatile("mma.sync.aligned." SHAPE_TYPES " {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n" \
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                  \
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))
// C[16 x 8] += A[16 x 16] * B[16 x 8], f16 in.
__device__ __forceinline__ void mma(float* c, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
  TQ_MMA_F32("m16n8k16.row.col.f32.f16.f16.f32");
}
// C[16 x 8] += A[16 x 8] * B[8 x 8], tf32 in (the prod fold, decode_prod.cuh).
__device__ __forceinline__ void mma_tf32(float* c, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
  TQ_MMA_F32("m16n8k8.row.col.f32.tf32.tf32.f32");
}
#undef TQ_MMA_F32
// S[16 x 8] += A[16 x 32] * B[32 x 8], int8 in (B unsigned with U8B: quad-V's P^T), int32
// accumulate (exact).
template <bool U8B = false>
__device__ __forceinline__ void mma_s8(int* c, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
#define TQ_MMA_I8(BT)                                                                                      \
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8." BT ".s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, " \
               "{%0,%1,%2,%3};\n"                                                                          \
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])                                             \
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))
  if constexpr (U8B) TQ_MMA_I8("u8"); else TQ_MMA_I8("s8");
#undef TQ_MMA_I8
}
__device__ __forceinline__ float ex2(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ uint32_t pack_half2(float a, float b) {
  const __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ float load_elem(const void* p, int dtype, size_t i) {
  if (dtype == 0) return static_cast<const float*>(p)[i];
  if (dtype == 1) return __half2float(static_cast<const __half*>(p)[i]);
  return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
}
__device__ __forceinline__ void store_elem(void* p, int dtype, size_t i, float v) {
  if (dtype == 0) static_cast<float*>(p)[i] = v;
  else if (dtype == 1) static_cast<__half*>(p)[i] = __float2half_rn(v);
  else static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
}

}  // namespace tq::cuda::v3
