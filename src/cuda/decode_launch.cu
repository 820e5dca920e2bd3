// src/cuda/decode_launch.cu — instantiations and launches of the decode kernels.
#include <cuda_runtime.h>

#include "cuda/decode_kernels.cuh"
#include "cuda/decode_launch.h"

namespace tq::cuda::launch {
namespace {

using kern::Params;
using DecodeFn = void (*)(const Params);

// The (K bits, V bits) pairs compiled: fp16/fp16 and TurboQuant k == v or k == v + 1.
struct Kernel {
  DecodeFn fn = nullptr;
  int smem = 0;  // dynamic shared memory bytes
};

template <int D, int MAXG>
Kernel pick(int kb, int vb) {
#define TQ_CASE(K, V) if (kb == K && vb == V) return {kern::decode_split<D, K, V, MAXG>, kern::stage_bytes(D, K, V)};
  TQ_CASE(0, 0) TQ_CASE(1, 1) TQ_CASE(2, 2) TQ_CASE(3, 3) TQ_CASE(4, 4) TQ_CASE(3, 2) TQ_CASE(4, 3) TQ_CASE(0, 3) TQ_CASE(0, 4)
#undef TQ_CASE
  return {};
}

Kernel find(int d, int kb, int vb, int g) {
  switch (d * 16 + g) {
    case 64 * 16 + 4: return pick<64, 4>(kb, vb);
    case 64 * 16 + 8: return pick<64, 8>(kb, vb);
    case 128 * 16 + 4: return pick<128, 4>(kb, vb);
    case 128 * 16 + 8: return pick<128, 8>(kb, vb);
    case 256 * 16 + 4: return pick<256, 4>(kb, vb);
    case 256 * 16 + 8: return pick<256, 8>(kb, vb);
    default: return {};
  }
}

// Raises the dynamic shared-memory limit once per kernel (stages above 48 KB at head_dim 256).
bool prepare(const Kernel& k) {
  if (!k.fn) return false;
  return cudaFuncSetAttribute(k.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, k.smem) == cudaSuccess;
}

template <int D>
cudaError_t launch_rotate(const DecodeLaunch& a, cudaStream_t st) {
  const int rows = a.B * a.Hq;
  const int rot = a.k_bits != 0;
  switch (a.q_dtype) {
    case 0: kern::rotate_q<D, float><<<rows, D, 0, st>>>(static_cast<const float*>(a.q), a.k_signs, rot, a.scale, a.q_rot, a.error_flag); break;
    case 1: kern::rotate_q<D, __half><<<rows, D, 0, st>>>(static_cast<const __half*>(a.q), a.k_signs, rot, a.scale, a.q_rot, a.error_flag); break;
    default: kern::rotate_q<D, __nv_bfloat16><<<rows, D, 0, st>>>(static_cast<const __nv_bfloat16*>(a.q), a.k_signs, rot, a.scale, a.q_rot, a.error_flag);
  }
  return cudaGetLastError();
}

template <int D>
cudaError_t launch_merge(const DecodeLaunch& a, cudaStream_t st) {
  const int rows = a.B * a.Hq;
  const int unrot = a.v_bits != 0;
  switch (a.out_dtype) {
    case 0: kern::merge_unrotate<D, float><<<rows, D, 0, st>>>(a.part_o, a.part_ml, a.splits, a.v_signs, unrot, static_cast<float*>(a.out)); break;
    case 1: kern::merge_unrotate<D, __half><<<rows, D, 0, st>>>(a.part_o, a.part_ml, a.splits, a.v_signs, unrot, static_cast<__half*>(a.out)); break;
    default: kern::merge_unrotate<D, __nv_bfloat16><<<rows, D, 0, st>>>(a.part_o, a.part_ml, a.splits, a.v_signs, unrot, static_cast<__nv_bfloat16*>(a.out));
  }
  return cudaGetLastError();
}

}  // namespace

bool has_kernel(int d, int kb, int vb, int g) { return find(d, kb, vb, g).fn != nullptr; }

int blocks_per_sm(int d, int kb, int vb, int g) {
  const Kernel k = find(d, kb, vb, g);
  int n = 0;
  if (!prepare(k) || cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, k.fn, kern::kThreads, k.smem) != cudaSuccess) return 0;
  return n;
}

int sm_count() {
  int dev = 0, n = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) return 0;
  return n;
}

int tile_tokens() { return kern::kTile; }

int run_decode(const DecodeLaunch& a) {
  cudaStream_t st = static_cast<cudaStream_t>(a.stream);
  const Kernel k = find(a.head_dim, a.k_bits, a.v_bits, a.max_group);
  if (!k.fn) return int(cudaErrorInvalidValue);
  cudaError_t e = cudaSuccess;
  switch (a.head_dim) {
    case 64: e = launch_rotate<64>(a, st); break;
    case 128: e = launch_rotate<128>(a, st); break;
    default: e = launch_rotate<256>(a, st);
  }
  if (e != cudaSuccess) return int(e);
  Params P{};
  P.q_rot = a.q_rot; P.k_pool = a.k_pool; P.v_pool = a.v_pool; P.page_table = a.page_table;
  P.seq_lens = a.seq_lens; P.part_o = a.part_o; P.part_ml = a.part_ml; P.k_centroids = a.k_centroids;
  P.v_centroids = a.v_centroids; P.kl = a.kl; P.vl = a.vl; P.error_flag = a.error_flag;
  P.B = a.B; P.Hq = a.Hq; P.Hkv = a.Hkv; P.G = a.Hq / a.Hkv; P.max_pages = a.max_pages;
  P.num_pages = a.num_pages; P.splits = a.splits; P.chunk = a.chunk;
  k.fn<<<dim3(a.splits, a.Hkv, a.B), kern::kThreads, k.smem, st>>>(P);
  if ((e = cudaGetLastError()) != cudaSuccess) return int(e);
  switch (a.head_dim) {
    case 64: e = launch_merge<64>(a, st); break;
    case 128: e = launch_merge<128>(a, st); break;
    default: e = launch_merge<256>(a, st);
  }
  return int(e);
}

}  // namespace tq::cuda::launch
