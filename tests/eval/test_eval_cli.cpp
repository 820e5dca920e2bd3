// `tq eval` from outside: the paper's distortion on random unit vectors through the CLI's JSON, .npy
// and .safetensors inputs agree, CSV and SVG are written, and bad input (non-float dtypes, shape
// mismatches, missing tensors, NaN) gives a one-line error with a non-zero status, never a crash.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "turboquant/codebook.h"
#include "turboquant/npy.h"
#include "turboquant/rotation.h"
#include "turboquant/safetensors.h"

#include "test_util.h"

namespace {

using Result = tq::testing::CliResult;
Result run(const std::string& cmd, bool merge_stderr = true) { return tq::testing::run_shell(cmd, merge_stderr); }

tq::NpyArray f32(const std::vector<int64_t>& shape, uint64_t seed) {
  tq::NpyArray a;
  a.dtype = tq::DType::kF32;
  a.shape = shape;
  tq::Rng r(seed);
  std::vector<float> v(size_t(a.numel()));
  for (auto& e : v) e = float(r.normal());
  a.data.resize(v.size() * 4);
  std::memcpy(a.data.data(), v.data(), a.data.size());
  return a;
}

const std::string tq_bin = TQ_CLI_PATH;

TEST(EvalCli, RandomUnitVectorsMatchThePaper) {
  const Result r = run(tq_bin + " eval --random 8000 --dim 128 --codecs tq1,tq2,tq3,tq4 --json --no-progress", false);
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["results"].size(), 4u);
  for (int b = 1; b <= 4; ++b) {
    const auto& row = j["results"][b - 1];
    EXPECT_EQ(row["codec"], "tq" + std::to_string(b));
    EXPECT_NEAR(row["rel_mse"].get<double>() / tq::Codebook::get(128, b).distortion(), 1.0, 0.02) << b;
  }
}

TEST(EvalCli, NpyAndSafetensorsAgreeAndOutputsAreWritten) {
  const std::string tmp = testing::TempDir();
  const auto q = f32({2, 4, 3, 16}, 1), k = f32({2, 2, 40, 16}, 2), v = f32({2, 2, 40, 16}, 3);
  tq::npy_save(tmp + "/q.npy", q);
  tq::npy_save(tmp + "/k.npy", k);
  tq::npy_save(tmp + "/v.npy", v);
  tq::safetensors_save(tmp + "/qkv.safetensors", {{"q", q}, {"k", k}, {"v", v}});
  const std::string codecs = " --codecs fp16,q4r,k=tq4,v=tq2,kivi2 --json --no-progress";
  const Result a = run(tq_bin + " eval --q " + tmp + "/q.npy --k " + tmp + "/k.npy --v " + tmp + "/v.npy" + codecs +
                       " --csv " + tmp + "/r.csv --plot " + tmp + "/r.svg", false);
  const Result b = run(tq_bin + " eval --qkv " + tmp + "/qkv.safetensors" + codecs, false);
  ASSERT_EQ(a.status, 0) << a.out;
  ASSERT_EQ(b.status, 0) << b.out;
  const auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  ASSERT_EQ(ja["results"].size(), 4u);
  for (size_t i = 0; i < 4; ++i)
    for (const char* key : {"codec", "bits_per_value", "attn_rel_l2", "kld", "top1_agree"}) {
      ASSERT_TRUE(ja["results"][i].contains(key)) << key;
      EXPECT_EQ(ja["results"][i][key], jb["results"][i][key]) << key;
    }
  EXPECT_EQ(ja["results"][2]["codec"], "k=tq4,v=tq2");
  EXPECT_EQ(ja["data"]["Tq"], 3);
  std::ifstream csv(tmp + "/r.csv"), svg(tmp + "/r.svg");
  std::stringstream cs, ss;
  cs << csv.rdbuf();
  ss << svg.rdbuf();
  const std::string csv_text = cs.str(), svg_text = ss.str();
  EXPECT_EQ(std::count(csv_text.begin(), csv_text.end(), '\n'), 5) << csv_text;  // header + 4 rows
  EXPECT_NE(svg_text.find("<svg"), std::string::npos);
  EXPECT_NE(svg_text.find("q4r"), std::string::npos);
  // Text table mode works too.
  const Result t = run(tq_bin + " eval --qkv " + tmp + "/qkv.safetensors --codecs q8 --no-progress");
  EXPECT_EQ(t.status, 0);
  EXPECT_NE(t.out.find("q8"), std::string::npos);
}

TEST(EvalCli, BadInputGivesOneLineErrors) {
  const std::string tmp = testing::TempDir() + "/bad_";
  tq::npy_save(tmp + "k.npy", f32({1, 2, 10, 8}, 1));
  tq::npy_save(tmp + "v9.npy", f32({1, 2, 9, 8}, 2));
  tq::npy_save(tmp + "q.npy", f32({1, 4, 8}, 3));
  tq::npy_save(tmp + "q3.npy", f32({1, 3, 8}, 3));
  tq::NpyArray ints;
  ints.dtype = tq::DType::kI64;
  ints.shape = {1, 2, 10, 8};
  ints.data.assign(8 * 160, 0);
  tq::npy_save(tmp + "int.npy", ints);
  auto nan = f32({1, 2, 10, 8}, 4);
  const float qnan = NAN;
  std::memcpy(nan.data.data() + 4 * 17, &qnan, 4);
  tq::npy_save(tmp + "nan.npy", nan);
  tq::safetensors_save(tmp + "nov.safetensors", {{"q", f32({1, 4, 8}, 1)}, {"k", f32({1, 2, 10, 8}, 1)}});
  tq::npy_save(tmp + "vec3d.npy", f32({2, 3, 4}, 5));
  const std::string q = " --q " + tmp + "q.npy", k = " --k " + tmp + "k.npy", v = " --v " + tmp + "k.npy";
  const std::string cases[] = {
      " eval" + q + k + " --v " + tmp + "v9.npy",      // V shape != K shape
      " eval --q " + tmp + "q3.npy" + k + v,           // 3 query heads over 2 KV heads
      " eval" + q + " --k " + tmp + "int.npy" + v,     // int64 keys
      " eval" + q + " --k " + tmp + "nan.npy" + v,     // NaN keys
      " eval --qkv " + tmp + "nov.safetensors",        // no tensor 'v'
      " eval" + q + " --k /nonexistent.npy" + v,       // missing file
      " eval" + q + k + v + " --codecs tq3,bogus",     // unknown codec
      " eval" + q + k + v + " --codecs k=tq3",         // half a pair
      " eval" + q + k,                                  // no V
      " eval --vectors " + tmp + "vec3d.npy",          // not 2-D
      " eval --vectors " + tmp + "q3.npy" + k,         // two inputs
      " eval --random 100",                             // no --dim
      " eval --random 100 --dim 64 --codecs k=tq4,v=tq3",  // separate K/V in vector mode
      " eval" + q + k + v + " --kivi-group 0 --codecs kivi2",
  };
  for (const auto& c : cases) {
    const Result r = run(tq_bin + c + " --no-progress");
    EXPECT_NE(r.status, 0) << c;
    EXPECT_LT(r.status, 128) << "crashed: " << c;
    EXPECT_EQ(r.out.rfind("tq eval: ", 0), 0u) << c << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c << "\n" << r.out;
  }
}

}  // namespace
