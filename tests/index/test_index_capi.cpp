// C API of the index: results equal the C++ API's; every misuse returns a status and a message.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "turboquant/index.h"
#include "turboquant/rotation.h"
#include "turboquant/turboquant_index.h"

namespace {

TEST(IndexCapi, MatchesCppAndReportsErrors) {
  const int d = 100;
  const size_t n = 300;
  tq::Rng r(3);
  std::vector<float> x(n * d), q(2 * d);
  for (auto& v : x) v = float(r.normal());
  for (auto& v : q) v = float(r.normal());
  tq_index* idx = nullptr;
  ASSERT_EQ(tq_index_create(d, "TQ4", TQ_METRIC_IP, &idx), TQ_OK);
  ASSERT_EQ(tq_index_add(idx, x.data(), n, d, nullptr), TQ_OK);
  size_t sz = 0, cs = 0;
  ASSERT_EQ(tq_index_size(idx, &sz), TQ_OK);
  EXPECT_EQ(sz, n);
  ASSERT_EQ(tq_index_code_size(idx, &cs), TQ_OK);
  EXPECT_EQ(cs, 52u);  // 100 coordinates x 4 bits + fp16 norm
  std::vector<float> D(20), Dc(20);
  std::vector<int64_t> L(20), Lc(20);
  ASSERT_EQ(tq_index_search(idx, q.data(), 2, d, 10, 1, Dc.data(), Lc.data()), TQ_OK);
  tq::FlatIndex cpp(d, "TQ4");
  cpp.add(x.data(), n, d);
  cpp.search(q.data(), 2, d, 10, D.data(), L.data());
  EXPECT_EQ(L, Lc);

  EXPECT_EQ(tq_index_search(idx, q.data(), 2, d + 1, 10, 1, Dc.data(), Lc.data()), TQ_INVALID_ARGUMENT);
  EXPECT_NE(std::string(tq_last_error()).find("dimension"), std::string::npos) << tq_last_error();
  EXPECT_EQ(tq_index_search(idx, q.data(), 2, d, 1000, 1, Dc.data(), Lc.data()), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_index_search(idx, nullptr, 2, d, 10, 1, Dc.data(), Lc.data()), TQ_INVALID_ARGUMENT);
  x[7] = NAN;
  EXPECT_EQ(tq_index_add(idx, x.data(), n, d, nullptr), TQ_INVALID_ARGUMENT);
  ASSERT_EQ(tq_index_size(idx, &sz), TQ_OK);
  EXPECT_EQ(sz, n);
  tq_index* bad = nullptr;
  EXPECT_EQ(tq_index_create(d, "XYZ", TQ_METRIC_IP, &bad), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(bad, nullptr);
  EXPECT_EQ(tq_index_create(d, "TQ4", tq_metric(9), &bad), TQ_INVALID_ARGUMENT);
  EXPECT_EQ(tq_index_load("/nonexistent/x.tqi", &bad), TQ_IO_ERROR);
  EXPECT_EQ(bad, nullptr);

  const std::string path = testing::TempDir() + "capi.tqi";
  ASSERT_EQ(tq_index_save(idx, path.c_str()), TQ_OK);
  tq_index* back = nullptr;
  ASSERT_EQ(tq_index_load(path.c_str(), &back), TQ_OK);
  ASSERT_EQ(tq_index_search(back, q.data(), 2, d, 10, 0, D.data(), L.data()), TQ_OK);
  EXPECT_EQ(L, Lc);
  const int64_t rm[3] = {0, 1, 12345};
  size_t removed = 0;
  ASSERT_EQ(tq_index_remove_ids(back, rm, 3, &removed), TQ_OK);
  EXPECT_EQ(removed, 2u);
  ASSERT_EQ(tq_index_reset(back), TQ_OK);
  EXPECT_EQ(tq_index_search(back, q.data(), 1, d, 1, 0, D.data(), L.data()), TQ_INVALID_ARGUMENT);
  EXPECT_NE(std::string(tq_last_error()).find("empty"), std::string::npos);
  tq_index_free(back);
  tq_index_free(idx);
  tq_index_free(nullptr);
}

}  // namespace
