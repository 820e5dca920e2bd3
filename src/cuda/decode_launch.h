// src/cuda/decode_launch.h — host-side entry points of the v1 decode kernels (CUDA cores; kept as an
// independent GPU reference, forced with TQ_CUDA_DECODE_V1=1) (plain C++, no CUDA
// headers, so g++-compiled code can call them). Each returns a cudaError_t as int.
#pragma once
#include <cstdint>

#include "turboquant/layout.h"

namespace tq::cuda::launch {

struct DecodeLaunch {
  // kernel selection
  int head_dim, k_bits, v_bits, max_group;  // bits 0 = fp16 pass-through; max_group 4 or 8
  int q_dtype, out_dtype;                   // 0 f32, 1 f16, 2 bf16
  // data
  const void* q; void* out;
  const uint8_t* k_pool; const uint8_t* v_pool;
  const int32_t* page_table; const int32_t* seq_lens;
  const float* k_signs; const float* v_signs;          // [3][D] device, or null
  const float* k_centroids; const float* v_centroids;  // device
  float* q_rot; float* part_o; float* part_ml; int* error_flag;  // workspace
  KvPageLayout kl, vl;
  int B, Hq, Hkv, max_pages, num_pages, splits, chunk;
  float scale;
  void* stream;
};

// True when a kernel exists for (head_dim, k_bits, v_bits, max_group).
bool has_kernel(int head_dim, int k_bits, int v_bits, int max_group);
// Resident decode blocks per SM for that kernel (occupancy), and the device's SM count.
int blocks_per_sm(int head_dim, int k_bits, int v_bits, int max_group);
int sm_count();
int run_decode(const DecodeLaunch& a);  // the three launches; returns cudaError_t
int tile_tokens();                      // tokens per tile (page_tokens must be a multiple)

}  // namespace tq::cuda::launch
