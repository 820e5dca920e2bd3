// Codec-string parser: accepted forms, canonical names, errors.
#include <gtest/gtest.h>

#include "turboquant/codec.h"
#include "turboquant/error.h"

namespace {

TEST(ParseCodec, AcceptsAllForms) {
  for (const char* s : {"fp32", "fp16", "bf16", "tq1", "tq3", "tq8", "tq2.5", "tq3.5", "tq4p", "tq2p",
                        "tq3:norm=fp32", "tq3:rot=dense:seed=5", "q4", "q8r", "fp8", "kivi2"}) {
    const auto spec = tq::parse_codec(s);
    EXPECT_EQ(tq::parse_codec(spec.name()).name(), spec.name()) << s;
  }
  const auto s = tq::parse_codec("tq2.5");
  EXPECT_EQ(s.id, tq::CodecId::kTqMse);
  EXPECT_TRUE(s.fractional);
  EXPECT_DOUBLE_EQ(s.hi_fraction, 0.25);
  EXPECT_EQ(tq::parse_codec("tq4p").id, tq::CodecId::kTqProd);
  EXPECT_EQ(tq::parse_codec(" TQ3 ").bits, 3);
}

TEST(ParseCodec, KvForms) {
  auto kv = tq::parse_kv_codec("k4v3");
  EXPECT_EQ(kv.k.name(), "tq4");
  EXPECT_EQ(kv.v.name(), "tq3");
  kv = tq::parse_kv_codec("k3.5v2.5");
  EXPECT_EQ(kv.k.name(), "tq3.5");
  kv = tq::parse_kv_codec("k=fp16,v=tq2");
  EXPECT_EQ(kv.k.name(), "fp16");
  EXPECT_EQ(kv.v.name(), "tq2");
  EXPECT_EQ(tq::parse_kv_codec("tq3").k.name(), "tq3");
}

TEST(ParseCodec, RejectsBadStrings) {
  for (const char* s : {"", "tq", "tq0", "tq9", "tq8.5", "tqx", "tq3:norm=fp8", "tq3:rot=fft", "tq3:seed=-1",
                        "tq3:bogus=1", "tq3:", "fp16:norm=fp32", "int3", "k4", "kv", "k=tq3", "k4vx"}) {
    EXPECT_THROW(tq::parse_kv_codec(s), tq::Error) << "'" << s << "'";
  }
  try {
    tq::parse_codec("tq9");
  } catch (const tq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("tq9"), std::string::npos);
    EXPECT_EQ(e.status(), tq::Status::kInvalidArgument);
  }
}

}  // namespace
