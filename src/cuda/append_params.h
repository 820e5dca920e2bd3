// src/cuda/append_params.h — parameters of the append kernel (append.cuh), plain C++ for the plan.
#pragma once
#include <cstdint>

#include "turboquant/layout.h"

namespace tq::cuda::append {

constexpr int kThreads = 256;  // 8 vectors per block
constexpr int kRounds = 3;     // Hadamard rounds (Rotation::kHadamardRounds)

struct Params {
  const void* x;                 // [n_tokens, Hkv, D] in_dtype
  const int32_t* slot_mapping;   // [n_tokens] page * page_tokens + offset, < 0 = skip
  uint8_t* pool;                 // pages (KvPageLayout)
  int* error_flag;               // bit 0: slot beyond the pool, bit 1: norm beyond fp16
  KvPageLayout layout;
  int n_tokens, Hkv, num_pages, in_dtype;  // 0 f32, 1 f16, 2 bf16
  int vpw;                       // vectors per warp, 1..32
  float bound[15];               // Lloyd-Max boundaries (float, ascending)
  uint32_t sign[kRounds][8];     // Hadamard sign bits (bit set = -1), D <= 256
};

// Kernel entry per (head_dim, bits), bits 0 = fp16 pass-through; nullptr if none.
const void* append_kernel_for(int d, int bits);

}  // namespace tq::cuda::append
