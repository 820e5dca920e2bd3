// CUDA append (encode into pages) vs the CPU encoder: the whole pool, byte for byte. Fresh random
// vectors of several scales, shuffled slots with padding entries, a poisoned pool (bytes nobody
// should write must keep the poison). Skips (visibly) without a GPU.
#include <gtest/gtest.h>

#if defined(TQ_HAVE_CUDA)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>

#include "turboquant/cuda/append.h"
#include "turboquant/error.h"
#include "turboquant/half.h"

namespace {

#define CK(x) ASSERT_EQ((x), cudaSuccess) << #x

// n tokens x Hkv heads; the pool has room for n + 200 tokens (pages of 64).
void run_append(const char* codec, int D, tq::cuda::DType dt, std::mt19937& rng, int n = 113, int Hkv = 3) {
  SCOPED_TRACE(testing::Message() << "codec=" << codec << " D=" << D << " dtype=" << int(dt) << " n=" << n
                                  << " Hkv=" << Hkv);
  const int PT = 64, num_pages = (n + 200) / PT + 1;
  tq::cuda::AppendPlan plan(tq::parse_codec(codec), Hkv, D, PT, num_pages, dt);
  const tq::KvPageLayout L = plan.layout();
  const tq::Codec& c = plan.codec();
  // Inputs: Gaussian rows at scales 1e-3 .. 1e2, rounded to the input dtype (what the GPU reads).
  std::normal_distribution<float> nd;
  std::vector<float> x(size_t(n) * Hkv * D);
  std::vector<uint8_t> raw(x.size() * (dt == tq::cuda::DType::kF32 ? 4 : 2));
  for (size_t r = 0; r < size_t(n) * Hkv; ++r) {
    const float scale = std::pow(10.f, float(int(rng() % 6)) - 3.f);
    for (int j = 0; j < D; ++j) {
      float v = nd(rng) * scale;
      const size_t i = r * D + j;
      if (dt == tq::cuda::DType::kF32) {
        std::memcpy(raw.data() + 4 * i, &v, 4);
      } else {
        const uint16_t h = dt == tq::cuda::DType::kF16 ? tq::float_to_half(v) : tq::float_to_bf16(v);
        v = dt == tq::cuda::DType::kF16 ? tq::half_to_float(h) : tq::bf16_to_float(h);
        std::memcpy(raw.data() + 2 * i, &h, 2);
      }
      x[i] = v;
    }
  }
  // Slots: distinct, shuffled, every 10th token padding (-1), and the last one.
  std::vector<int32_t> slots(num_pages * PT);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng);
  slots.resize(n);
  for (int i = 3; i < n; i += 10) slots[i] = -1;
  if (n > 1) slots[n - 1] = -1;  // padding at the tail of the last tile too
  // Expected pool: the poison, with the CPU encoder's bytes where the GPU must write.
  const size_t pool_bytes = size_t(num_pages) * L.page_bytes();
  std::vector<uint8_t> expect(pool_bytes, 0xAB), code(c.code_size());
  for (int i = 0; i < n; ++i) {
    if (slots[i] < 0) continue;
    const int page = slots[i] / PT, off = slots[i] % PT;
    for (int h = 0; h < Hkv; ++h) {
      c.encode(&x[(size_t(i) * Hkv + h) * D], 1, D, code.data());
      uint8_t* pg = expect.data() + size_t(page) * L.page_bytes();
      std::copy_n(code.data(), L.codes_bytes, pg + L.codes_offset(h, off));
      std::copy_n(code.data() + L.codes_bytes, L.scalar_bytes, pg + L.scalars_offset(h, off));
    }
  }
  void *dx, *ds, *dp;
  CK(cudaMalloc(&dx, raw.size()));
  CK(cudaMalloc(&ds, slots.size() * 4));
  CK(cudaMalloc(&dp, pool_bytes));
  CK(cudaMemcpy(dx, raw.data(), raw.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(ds, slots.data(), slots.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemset(dp, 0xAB, pool_bytes));
  plan.run(dx, static_cast<int32_t*>(ds), n, static_cast<uint8_t*>(dp), nullptr);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  EXPECT_EQ(plan.read_error_flag(), 0);
  std::vector<uint8_t> got(pool_bytes);
  CK(cudaMemcpy(got.data(), dp, pool_bytes, cudaMemcpyDeviceToHost));
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < pool_bytes; ++i)
    if (got[i] != expect[i] && bad++ == 0) first = i;
  EXPECT_EQ(bad, 0u) << "bytes differing from the CPU encoder (first at " << first << ": got " << int(got[first])
                     << ", want " << int(expect[first]) << ")";
  // A slot beyond the pool is flagged and not written.
  const int32_t beyond = num_pages * PT;
  CK(cudaMemcpy(ds, &beyond, 4, cudaMemcpyHostToDevice));
  plan.run(dx, static_cast<int32_t*>(ds), 1, static_cast<uint8_t*>(dp), nullptr);
  CK(cudaDeviceSynchronize());
  EXPECT_EQ(plan.read_error_flag(), 1);
  for (void* p : {dx, ds, dp}) cudaFree(p);
}

TEST(CudaAppend, BitIdenticalToCpuEncoder) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  using tq::cuda::DType;
  for (const char* codec : {"tq2", "tq3", "tq4", "fp16"})
    for (int D : {64, 128, 256}) run_append(codec, D, DType::kF32, rng);
  run_append("tq3", 128, DType::kF16, rng);
  run_append("tq4", 128, DType::kBF16, rng);
}

// The tiled kernel (v2) at odd counts: one vector, a partial pass, one pass per warp with a
// partial last one (4097 tokens x 8 heads), tiles of 4 passes (10000 x 8 at D = 128 from f16),
// of 16 vectors from f32 and at D = 256 (8191 x 8), every head_dim and input dtype.
TEST(CudaAppend, TiledOddShapes) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  using tq::cuda::DType;
  for (int n : {1, 7, 4097}) run_append("tq3", 128, DType::kF16, rng, n, n == 4097 ? 8 : 3);
  run_append("tq3", 128, DType::kF16, rng, 10000, 8);
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (int D : {64, 128, 256}) {
      run_append("tq2", D, dt, rng, 4097, 8);
      run_append("tq4", D, dt, rng, 7, 1);
    }
  run_append("tq4", 256, DType::kF32, rng, 1, 1);
  run_append("tq3", 64, DType::kBF16, rng, 113, 3);
  // Several passes per tile from f32 / at D = 256 (largest tiles of 16 vectors), a short last tile.
  run_append("tq3", 128, DType::kF32, rng, 8191, 8);
  run_append("tq4", 256, DType::kBF16, rng, 8191, 8);
}

// The previous kernel (v1), still selectable with TQ_CUDA_APPEND_V1=1 at plan time.
TEST(CudaAppend, V1BitIdenticalToCpuEncoder) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  setenv("TQ_CUDA_APPEND_V1", "1", 1);
  for (const char* codec : {"tq2", "tq3", "tq4"}) run_append(codec, 128, tq::cuda::DType::kF16, rng, 4097, 3);
  unsetenv("TQ_CUDA_APPEND_V1");
}

TEST(CudaAppend, UnsupportedFailsAtPlanTime) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  auto plan = [](const char* c, int d) { tq::cuda::AppendPlan p(tq::parse_codec(c), 8, d, 64, 4, tq::cuda::DType::kF16); };
  EXPECT_THROW(plan("tq2.5", 128), tq::Error);
  EXPECT_THROW(plan("tq3p", 128), tq::Error);
  EXPECT_THROW(plan("tq3", 96), tq::Error);
  EXPECT_THROW(plan("q8", 128), tq::Error);
}

}  // namespace

#else
TEST(CudaAppend, SkippedWithoutCuda) { GTEST_SKIP() << "built without CUDA (TQ_ENABLE_CUDA=OFF)"; }
#endif
