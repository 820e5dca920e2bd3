// `tq attention` and `tq bench decode` from outside: .npy in, .npy out, equal to the library's
// reference; JSON rows for every codec; bad input gives a one-line error and a non-zero status.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "kv_test_util.h"
#include "turboquant/attention.h"
#include "turboquant/npy.h"

#include "test_util.h"

namespace {

using Result = tq::testing::CliResult;
Result run(const std::string& cmd, bool merge_stderr = true) { return tq::testing::run_shell(cmd, merge_stderr); }

TEST(CliAttention, MatchesTheLibraryOnNpyFiles) {
  const int B = 3, Hq = 8, Hkv = 2, T = 70, D = 64;
  const auto q = tqtest::randn(size_t(B) * Hq * D, 1), k = tqtest::randn(size_t(B) * Hkv * T * D, 2),
             v = tqtest::randn(size_t(B) * Hkv * T * D, 3);
  const std::string dir = testing::TempDir();
  tq::npy_save_f32(dir + "/q.npy", q.data(), {B, Hq, D});
  tq::npy_save_f32(dir + "/k.npy", k.data(), {B, Hkv, T, D});
  tq::npy_save_f32(dir + "/v.npy", v.data(), {B, Hkv, T, D});
  const std::string base = std::string(TQ_CLI_PATH) + " attention --q " + dir + "/q.npy --k " + dir + "/k.npy --v " +
                           dir + "/v.npy --out " + dir + "/o.npy";
  for (const char* codecs : {"--codec-k tq4 --codec-v tq3 --fp32-scores", "--codec-k tq4 --codec-v tq3",
                             "--codec-k fp16 --codec-v tq2.5 --scale 0.3"}) {
    const Result r = run(base + " " + codecs);
    ASSERT_EQ(r.status, 0) << r.out;
    const tq::NpyArray o = tq::npy_load(dir + "/o.npy");
    ASSERT_EQ(o.shape, (std::vector<int64_t>{B, Hq, D}));
    const auto got = o.to_f32();
    std::vector<float> want(got.size());
    const bool first = std::string(codecs).find("tq4") != std::string::npos;
    tq::attention_dense(q.data(), k.data(), v.data(), B, Hq, Hkv, T, D, first ? "tq4" : "fp16", first ? "tq3" : "tq2.5",
                        first ? 0.f : 0.3f, want.data(), /*reference=*/true);
    // int8 scores of TurboQuant keys (the default on VNNI CPUs) round at ~3e-3 (attn_int8.h).
    const bool i8 = first && std::string(codecs).find("fp32-scores") == std::string::npos;
    EXPECT_LT(tqtest::rel_l2(got.data(), want.data(), got.size()), i8 ? 1.5e-2 : 2e-5) << codecs;
  }
}

TEST(CliAttention, BadInputGivesOneLineErrors) {
  const std::string dir = testing::TempDir();
  const auto x = tqtest::randn(2 * 4 * 8 * 16, 4);
  tq::npy_save_f32(dir + "/q3.npy", x.data(), {2, 4, 16});
  tq::npy_save_f32(dir + "/k4.npy", x.data(), {2, 2, 8, 16});
  tq::npy_save_f32(dir + "/k_badd.npy", x.data(), {2, 2, 16, 8});
  tq::npy_save_f32(dir + "/k_3h.npy", x.data(), {2, 3, 8, 8});
  const std::string tq = std::string(TQ_CLI_PATH) + " attention --out " + dir + "/o.npy";
  const std::string cases[] = {
      tq + " --q " + dir + "/k4.npy --k " + dir + "/k4.npy --v " + dir + "/k4.npy",        // q is 4-D
      tq + " --q " + dir + "/q3.npy --k " + dir + "/k_badd.npy --v " + dir + "/k_badd.npy",  // D mismatch
      tq + " --q " + dir + "/q3.npy --k " + dir + "/k4.npy --v " + dir + "/k_badd.npy",      // K/V shapes differ
      tq + " --q " + dir + "/q3.npy --k " + dir + "/k4.npy --v " + dir + "/k4.npy --codec-k tq9",
      tq + " --q " + dir + "/q3.npy --k " + dir + "/k4.npy --v " + dir + "/k4.npy --scale -1",
      tq + " --q " + dir + "/nope.npy --k " + dir + "/k4.npy --v " + dir + "/k4.npy",
  };
  for (const auto& c : cases) {
    const Result r = run(c);
    EXPECT_NE(r.status, 0) << c;
    EXPECT_LT(r.status, 128) << "crashed: " << c;
    EXPECT_EQ(r.out.rfind("tq attention: ", 0), 0u) << c << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
}

TEST(CliBench, DecodeJsonHasARowPerCodecWithAccuracy) {
  const Result r = run(std::string(TQ_CLI_PATH) +
                           " bench decode --device cpu --batch 2 --heads-q 8 --heads-kv 2 --head-dim 64 --context 300,65 "
                           "--codecs fp32,fp16,tq3,k4v3 --reps 2 --warmup 1 --threads 2 --warm --json",
                       false);
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["results"].size(), 8u);
  for (const auto& row : j["results"]) {
    EXPECT_GT(row["us"].get<double>(), 0) << row;
    EXPECT_GT(row["append_tokens_per_s"].get<double>(), 0) << row;
    EXPECT_GT(row["gbps"].get<double>(), 0) << row;
    const std::string c = row["codec"];
    // the fast path's own error: int8 scores of TurboQuant keys round at ~3e-3 (attn_int8.h)
    EXPECT_LT(row["err_vs_reference"].get<double>(), c == "fp32" || c == "fp16" ? 2e-5 : 1.5e-2) << row;
    if (c == "fp32") EXPECT_LT(row["err_vs_exact"].get<double>(), 1e-5);
    if (c == "tq3") EXPECT_GT(row["err_vs_exact"].get<double>(), 1e-3) << "a 3-bit cache is not exact";
    const size_t bpt = row["bytes_per_token"];
    EXPECT_EQ(bpt, c == "fp32" ? 2u * 2 * 256 : c == "fp16" ? 2u * 2 * 128 : c == "tq3" ? 2u * 2 * 26 : 2u * (34 + 26));
  }
  EXPECT_NE(run(std::string(TQ_CLI_PATH) + " bench decode --codecs tq3,nope --context 10").status, 0);
  EXPECT_NE(run(std::string(TQ_CLI_PATH) + " bench decode --device cuda --context 10").status, 0);
}

}  // namespace
