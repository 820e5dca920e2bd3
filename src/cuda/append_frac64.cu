// src/cuda/append_frac64.cu — append kernel for tq2.5 and tq2.5p at head_dim 64: one thread per
// vector running the shared encoder of append_frac64.h (the bytes of TqCodec::encode; its CPU test
// runs the same source on the host).
//
// Block: kF64Threads threads; the codec's tables (9 KB for tq2.5, 39 KB for tq2.5p) are copied
// into shared memory (every thread then reads the same address: broadcasts), thread t encodes vector
// blockIdx.x · kF64Threads + t (its row read from global memory directly, 16-byte loads), stores
// the 18-byte codes section and the scalars with 16-bit stores (rows are 18 bytes apart).
// Work per vector: tq2.5 48·48 fp32 FMA (dense part 1) + the 16-dim Hadamard; tq2.5p 48·48 + 48·48 +
// 16·16 DFMA.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/append.cuh"
#include "cuda/append_frac64.h"

namespace tq::cuda::append {

template <bool PROD>
__global__ void __launch_bounds__(kF64Threads) append_frac64_kernel(const __grid_constant__ Frac64Params P) {
  using Tab = std::conditional_t<PROD, Frac64ProdTables, Frac64MseTables>;
  __shared__ __align__(16) Tab tab;
  {
    const uint4* src = static_cast<const uint4*>(P.tables);
    uint4* dst = reinterpret_cast<uint4*>(&tab);
    for (int i = threadIdx.x; i < int(sizeof(Tab) / 16); i += blockDim.x) dst[i] = __ldg(src + i);
  }
  __syncthreads();
  const long long v = (long long)blockIdx.x * kF64Threads + threadIdx.x;
  if (v >= (long long)P.n_tokens * P.Hkv) return;
  int head;
  const int slot = checked_slot(P, v, head);
  if (slot < 0) return;

  float x[kF64D];
  if (P.in_dtype == 0) {
    const uint4* row = static_cast<const uint4*>(P.x) + size_t(v) * (kF64D / 4);
#pragma unroll
    for (int c = 0; c < kF64D / 4; ++c) {
      const uint4 q = __ldg(row + c);
      x[4 * c] = __uint_as_float(q.x); x[4 * c + 1] = __uint_as_float(q.y);
      x[4 * c + 2] = __uint_as_float(q.z); x[4 * c + 3] = __uint_as_float(q.w);
    }
  } else {
    const bool f16 = P.in_dtype == 1;
    const uint4* row = static_cast<const uint4*>(P.x) + size_t(v) * (kF64D / 8);
#pragma unroll
    for (int c = 0; c < kF64D / 8; ++c) {
      const uint4 q = __ldg(row + c);
      const uint32_t w4[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const uint32_t lo = w4[k] & 0xFFFFu, hi = w4[k] >> 16;
        x[8 * c + 2 * k] = f16 ? __half2float(__ushort_as_half(uint16_t(lo))) : __uint_as_float(lo << 16);
        x[8 * c + 2 * k + 1] = f16 ? __half2float(__ushort_as_half(uint16_t(hi))) : __uint_as_float(hi << 16);
      }
    }
  }

  uint32_t w[5];
  constexpr int NS = PROD ? 4 : 2;
  uint16_t scal[NS];
  bool ok;
  if constexpr (PROD) ok = frac64_encode_prod(x, tab, w, scal);
  else ok = frac64_encode_mse(x, tab, w, scal);
  if (!ok) atomicOr(P.error_flag, 2);  // a part norm beyond fp16 (the CPU encoder throws)

  const int page = slot / int(P.layout.page_tokens), off = slot % int(P.layout.page_tokens);
  uint8_t* base = P.pool + size_t(page) * P.layout.page_bytes();
  uint16_t* codes = reinterpret_cast<uint16_t*>(base + P.layout.codes_offset(head, off));  // 2-byte aligned
#pragma unroll
  for (int k = 0; k < 9; ++k) codes[k] = uint16_t(w[k / 2] >> (16 * (k & 1)));
  uint16_t* sc = reinterpret_cast<uint16_t*>(base + P.layout.scalars_offset(head, off));
#pragma unroll
  for (int k = 0; k < NS; ++k) sc[k] = scal[k];
}

const void* append_frac64_kernel_for(bool prod) {
  return prod ? reinterpret_cast<const void*>(&append_frac64_kernel<true>)
              : reinterpret_cast<const void*>(&append_frac64_kernel<false>);
}

}  // namespace tq::cuda::append
