// The model's CUDA KV store (pages on the GPU, CUDA append + decode) against the CPU paged cache
// with the same codec and reference attention (decode every row, double sums): the codes are
// byte-identical (append), so outputs differ only by the decode kernel's fp16 operands (q, centroids
// and p rounded to fp16, 2^-11 relative each; the v3-vs-v1 cross-check measures ~5e-4 at unit-scale
// logits): 5e-3 leaves a 10x margin and is far below any codec's own error (>= 1e-2 at 4 bits).
// TurboQuant K is scored in int8 on the GPU (q per row and the centroids rounded to int8): a numpy
// emulation of these shapes (unit-scale logits, T = 1..123) gives 0.7% mean, 1.3% max: 3e-2.
// tq5..tq8 are scored in fp16 (K's centroid table rounded to fp16 too, a rounding of the size of q's):
// 5e-3 as for fp16.
// Causal multi-query batches (the forward's prefill) and single steps.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "test_util.h"
#include "turboquant/error.h"
#include "turboquant/model/cuda_kv_store.h"
#include "turboquant/model/kv_store.h"

#if defined(TQ_HAVE_CUDA)
#include "turboquant/cuda/decode.h"

namespace {

using tq::testing::rel_l2;  // tests/test_util.h

// Both stores (2 layers, 8 q / 2 kv heads) take the same random appends of steps[i] positions per
// layer and answer the same causal queries; outputs within rel. L2 tol.
void append_and_attend(tq::model::KvStore& gpu, tq::model::KvStore& cpu, std::initializer_list<int> steps,
                       uint64_t seed, double tol) {
  SCOPED_TRACE(gpu.name());
  const int D = gpu.shape().head_dim;
  for (int n : steps) {
    for (int layer = 0; layer < 2; ++layer) {
      const auto k = tq::testing::randn(size_t(n) * 2 * D, seed++);
      const auto v = tq::testing::randn(size_t(n) * 2 * D, seed++);
      const auto q = tq::testing::randn(size_t(n) * 8 * D, seed++);
      gpu.append(layer, k.data(), v.data(), n);
      cpu.append(layer, k.data(), v.data(), n);
      std::vector<float> og(q.size(), NAN), oc(q.size(), NAN);
      gpu.attend(layer, q.data(), n, og.data());
      cpu.attend(layer, q.data(), n, oc.data());
      EXPECT_LT(rel_l2(og, oc), tol) << "D " << D << " n " << n << " layer " << layer;
    }
  }
}

TEST(CudaKvStore, MatchesTheCpuCacheOnPrefillAndDecodeSteps) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  for (const char* codec : {"fp16", "tq3", "k4v3", "tq4", "tq2.5", "tq3.5", "tq4p", "tq3p", "tq1", "tq2p", "tq5", "tq8",
                            "tq1.5", "tq5p", "tq4.5", "tq7.5", "tq7p", "tq2.5p", "tq3.5p", "tq4.5p", "tq1.5p", "tq6.5p"}) {
    for (int D : {64, 128}) {
      tq::model::KvShape s{2, 8, 2, D, float(1 / std::sqrt(double(D)))};
      auto gpu = tq::model::make_cuda_kv_store(s, codec, 1000);
      tq::model::KvStoreOptions o;
      o.kind = "cache";
      o.attn = "reference";
      o.capacity = 1000;
      auto cpu = tq::model::make_kv_store(s, codec, o);
      // A prefill, decode steps, a 7-token speculative batch.
      const std::string c = codec;
      const bool fp16_scores = c == "fp16" || c == "tq5" || c == "tq8" || c == "tq4.5" || c == "tq7.5";
      append_and_attend(*gpu, *cpu, {113, 1, 1, 7, 1}, 1, fp16_scores ? 5e-3 : 3e-2);
      EXPECT_EQ(gpu->length(0), cpu->length(0));
      EXPECT_EQ(gpu->bytes_per_token(), cpu->bytes_per_token()) << codec;
    }
  }
}

// V in token quads (KvStoreOptions::v_quads): the GPU store (quad append, int8-PV decode) against the
// CPU cache holding the same codes in the same layout. The int8 PV adds V centroids rounded to int8
// and p * |v| to u8 per 32-token block (~0.2-0.4% per term, CudaDecode.QuadVMatchesCpuReference
// measures up to 8e-3 against an int8-K reference), on top of the int8 scores' 1.3%: 3e-2 still.
TEST(CudaKvStore, VQuadsMatchTheCpuQuadCache) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  for (const char* codec : {"tq3", "tq2", "tq4"}) {
    for (int D : {64, 128}) {
      tq::model::KvShape s{2, 8, 2, D, float(1 / std::sqrt(double(D)))};
      tq::model::KvStoreOptions o;
      o.kind = "cuda";
      o.capacity = 1000;
      o.v_quads = true;
      auto gpu = tq::model::make_kv_store(s, codec, o);
      o.kind = "cache";
      o.attn = "reference";
      auto cpu = tq::model::make_kv_store(s, codec, o);
      EXPECT_NE(gpu->name().find("quads"), std::string::npos) << gpu->name();
      EXPECT_NE(cpu->name().find("quads"), std::string::npos) << cpu->name();
      append_and_attend(*gpu, *cpu, {113, 1, 1, 7, 1, 30}, 7, 3e-2);  // the last: blocks filled across appends
    }
  }
  tq::model::KvShape s{1, 4, 2, 64, 0.125f};
  for (const char* codec : {"tq1", "k4v3", "fp16", "tq3.5", "tq6"})  // no quad-V decode kernel
    EXPECT_THROW(tq::model::make_cuda_kv_store(s, codec, 64, true), tq::Error) << codec;
}

TEST(CudaKvStore, UnsupportedCodecFailsAtConstruction) {
  if (!tq::cuda::device_available()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  tq::model::KvShape s{1, 4, 2, 64, 0.125f};
  EXPECT_THROW(tq::model::make_cuda_kv_store(s, "k1.5pv2.5p", 64), tq::Error);  // fractional prod: K and V the same
  EXPECT_THROW(tq::model::make_cuda_kv_store(s, "k5.5pv5.5", 64), tq::Error);
  EXPECT_THROW(tq::model::make_cuda_kv_store(s, "k3pv3", 64), tq::Error);  // prod K with an mse V: no kernel
  EXPECT_THROW(tq::model::make_cuda_kv_store(s, "q4", 64), tq::Error);
  EXPECT_THROW(tq::model::make_cuda_kv_store(s, "k5v4", 64), tq::Error);  // tq5..tq8: K and V the same bits
}

}  // namespace
#else
TEST(CudaKvStore, SkippedWithoutCuda) { GTEST_SKIP() << "built without CUDA (TQ_ENABLE_CUDA=OFF)"; }
#endif
