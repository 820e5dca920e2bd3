// .npy reader/writer: round trip, strict rejection of malformed files.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "turboquant/error.h"
#include "turboquant/npy.h"

namespace {

TEST(Npy, RoundTrip) {
  const std::string p = testing::TempDir() + "/rt.npy";
  std::vector<float> v(3 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.5f - 3;
  tq::npy_save_f32(p, v.data(), {3, 5});
  auto a = tq::npy_load(p);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(a.to_f32(), v);
}

TEST(Npy, RejectsMalformed) {
  const std::string p = testing::TempDir() + "/ok.npy";
  std::vector<float> v(8, 1.f);
  tq::npy_save_f32(p, v.data(), {2, 4});
  std::ifstream f(p, std::ios::binary);
  std::vector<uint8_t> good((std::istreambuf_iterator<char>(f)), {});
  // Every truncation fails cleanly.
  for (size_t cut = 0; cut < good.size(); ++cut) EXPECT_THROW(tq::npy_parse(good.data(), cut), tq::Error) << cut;
  auto bad = good;
  bad[1] = 'X';
  EXPECT_THROW(tq::npy_parse(bad.data(), bad.size()), tq::Error);
  std::string h(good.begin(), good.end());
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = h;
    s.replace(s.find(from), from.size(), to);
    return std::vector<uint8_t>(s.begin(), s.end());
  };
  for (auto b : {replace("<f4", ">f4"), replace("False", "True "), replace("(2, 4)", "(2, 5)"),
                 replace("(2, 4)", "(2,-4)"), replace("(2, 4)", "(9999999999999999, 4)")})
    EXPECT_THROW(tq::npy_parse(b.data(), b.size()), tq::Error);
  EXPECT_THROW(tq::npy_load("/nonexistent/file.npy"), tq::Error);
}

}  // namespace
