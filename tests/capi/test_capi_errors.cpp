// C ABI error reporting: failures come back as a status plus a thread-local message, never as an
// exception crossing the boundary or a crash.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "turboquant/capi_common.h"
#if defined(TQ_HAVE_CUDA)
#include "turboquant/turboquant_cuda.h"
#endif

namespace {

TEST(CApi, StatusNames) {
  EXPECT_STREQ(tq_status_name(TQ_OK), "ok");
  EXPECT_STREQ(tq_status_name(TQ_UNSUPPORTED), "unsupported");
  EXPECT_STREQ(tq_status_name(static_cast<tq_status>(99)), "unknown status");
}

TEST(CApi, GuardTurnsExceptionsIntoStatusAndMessage) {
  EXPECT_EQ(tq::capi::guard([] { TQ_FAIL(kOutOfRange, "sequence {} out of range", 7); }), TQ_OUT_OF_RANGE);
  EXPECT_EQ(std::string(tq_last_error()), "sequence 7 out of range");
  EXPECT_EQ(tq::capi::guard([] { throw std::bad_alloc(); }), TQ_OUT_OF_MEMORY);
  EXPECT_EQ(tq::capi::guard([] { throw 42; }), TQ_INTERNAL);
  EXPECT_EQ(tq::capi::guard([] {}), TQ_OK);
  EXPECT_STREQ(tq_last_error(), "");
  // The message is per thread.
  tq::capi::guard([] { TQ_FAIL(kIoError, "main thread error"); });
  std::thread([] { EXPECT_STREQ(tq_last_error(), ""); }).join();
  EXPECT_STREQ(tq_last_error(), "main thread error");
}

#if defined(TQ_HAVE_CUDA)
TEST(CApi, CudaPlanRejectsBadArgumentsWithoutCrashing) {
  tq_cuda_decode_plan* p = nullptr;
  EXPECT_EQ(tq_cuda_decode_plan_create("tq9", 1, 32, 8, 128, 64, 4, 4, 256, 1, 1, 0.f, &p), TQ_INVALID_ARGUMENT);
  EXPECT_NE(std::string(tq_last_error()).find("tq9"), std::string::npos);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(tq_cuda_decode_plan_create(nullptr, 1, 32, 8, 128, 64, 4, 4, 256, 1, 1, 0.f, &p), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_cuda_decode_plan_create("tq3", 1, 32, 8, 128, 64, 4, 4, 256, 7, 1, 0.f, &p), TQ_INVALID_ARGUMENT);
  // Without a GPU (CI) or with an unsupported codec: TQ_UNSUPPORTED, never a silent fallback.
  // (fp32 norms: no CUDA kernel for any codec, so this example does not go stale when codecs gain
  // kernels, as tq2.5 and tq3.5p did.)
  EXPECT_EQ(tq_cuda_decode_plan_create("tq3:norm=fp32", 1, 32, 8, 128, 64, 4, 4, 256, 1, 1, 0.f, &p), TQ_UNSUPPORTED);
  EXPECT_NE(std::string(tq_last_error()).find("tq3:norm=fp32"), std::string::npos) << tq_last_error();
  EXPECT_EQ(tq_cuda_decode_run(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            TQ_INVALID_ARGUMENT);
  size_t ws = 0;
  EXPECT_EQ(tq_cuda_decode_plan_info(nullptr, &ws, nullptr, nullptr, nullptr), TQ_INVALID_ARGUMENT);
  tq_cuda_decode_plan_destroy(nullptr);
}

// The _ex creators: unknown flags are invalid; token quads with a codec or page size they do not
// cover fail at plan time (before any device is needed), the same on a machine without a GPU.
TEST(CApi, CudaPlanFlagsAreValidated) {
  tq_cuda_decode_plan* p = nullptr;
  EXPECT_EQ(tq_cuda_decode_plan_create_ex("tq3", 1, 32, 8, 128, 64, 4, 4, 256, 1, 1, 0.f, 2u, &p), TQ_INVALID_ARGUMENT);
  EXPECT_NE(std::string(tq_last_error()).find("flags"), std::string::npos) << tq_last_error();
  for (const char* kv : {"tq1", "k4v3", "fp16", "tq3.5", "tq5", "tq8"})
    EXPECT_EQ(tq_cuda_decode_plan_create_ex(kv, 1, 32, 8, 128, 64, 4, 4, 256, 1, 1, 0.f, TQ_CUDA_TOKEN_QUADS, &p),
              TQ_UNSUPPORTED) << kv;
  EXPECT_EQ(p, nullptr);
  tq_cuda_append_plan* a = nullptr;
  EXPECT_EQ(tq_cuda_append_plan_create_ex("tq3", 8, 128, 64, 4, 1, 4u, &a), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_cuda_append_plan_create_ex("fp16", 8, 128, 64, 4, 1, TQ_CUDA_TOKEN_QUADS, &a), TQ_UNSUPPORTED);
  EXPECT_EQ(tq_cuda_append_plan_create_ex("tq3p", 8, 128, 64, 4, 1, TQ_CUDA_TOKEN_QUADS, &a), TQ_UNSUPPORTED);
  EXPECT_EQ(tq_cuda_append_plan_create_ex("tq6", 8, 128, 64, 4, 1, TQ_CUDA_TOKEN_QUADS, &a), TQ_UNSUPPORTED);
  EXPECT_EQ(tq_cuda_append_plan_create_ex("tq3", 8, 128, 40, 4, 1, TQ_CUDA_TOKEN_QUADS, &a), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(a, nullptr);
}
#endif

}  // namespace
