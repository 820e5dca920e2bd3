// Strict safetensors reader: hand-built files (independent of the writer) parse to the right values;
// every rejection listed in safetensors.h fires with tq::Error; every truncation of a valid file is
// rejected, never read out of bounds; writer -> reader round trip.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "turboquant/error.h"
#include "turboquant/safetensors.h"

namespace {

// 8-byte little-endian header length + header + buffer.
std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& buf) {
  std::vector<uint8_t> out(8 + header.size() + buf.size());
  for (int i = 0; i < 8; ++i) out[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  for (size_t i = 0; i < header.size(); ++i) out[8 + i] = uint8_t(header[i]);
  for (size_t i = 0; i < buf.size(); ++i) out[8 + header.size() + i] = buf[i];
  return out;
}

std::vector<uint8_t> f32_bytes(std::initializer_list<float> v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.begin(), b.size());
  return b;
}

tq::SafeTensors parse(const std::vector<uint8_t>& f) { return tq::safetensors_parse(f.data(), f.size(), "test"); }

TEST(Safetensors, HandBuiltFileParses) {
  auto buf = f32_bytes({1.f, 2.f, 3.f, 4.f, 5.f, 6.f});
  buf.push_back(7);  // one U8 value
  buf.push_back(9);
  const std::string h = R"({"__metadata__":{"format":"pt"},"k":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                        R"("b":{"dtype":"U8","shape":[2],"data_offsets":[24,26]}}   )";
  const auto st = parse(make_file(h, buf));
  ASSERT_EQ(st.tensors.size(), 2u);
  EXPECT_EQ(st.metadata.at("format"), "pt");
  const auto& k = st.at("k");
  EXPECT_EQ(k.dtype, tq::DType::kF32);
  EXPECT_EQ(k.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(k.to_f32(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(st.at("b").data, (std::vector<uint8_t>{7, 9}));
  EXPECT_THROW(st.at("q"), tq::Error);
  // Zero-size tensors and scalars (shape []) are legal.
  const auto z = parse(make_file(R"({"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},)"
                                 R"("s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})", f32_bytes({2.5f})));
  EXPECT_EQ(z.at("e").numel(), 0);
  EXPECT_EQ(z.at("s").to_f32(), (std::vector<float>{2.5f}));
}

TEST(Safetensors, RejectsMalformedFiles) {
  const auto buf = f32_bytes({1.f, 2.f});
  const std::string ok = R"({"q":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_NO_THROW(parse(make_file(ok, buf)));
  struct Bad { const char* why; std::string header; std::vector<uint8_t> buf; };
  const std::vector<Bad> cases = {
      {"not json", "{not json}", buf},
      {"not an object", "[1,2]", buf},
      {"duplicate key", R"({"q":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"q":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", buf},
      {"duplicate field", R"({"q":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", buf},
      {"unknown dtype", R"({"q":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", buf},
      {"int16 unsupported", R"({"q":{"dtype":"I16","shape":[4],"data_offsets":[0,8]}})", buf},
      {"negative shape", R"({"q":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", buf},
      {"float shape", R"({"q":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", buf},
      {"size mismatch", R"({"q":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", buf},
      {"begin > end", R"({"q":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", buf},
      {"beyond buffer", R"({"q":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", buf},
      {"hole", R"({"q":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", buf},
      {"trailing bytes", R"({"q":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", buf},
      {"overlap", R"({"q":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"r":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", buf},
      {"missing offsets", R"({"q":{"dtype":"F32","shape":[2]}})", buf},
      {"extra field", R"({"q":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", buf},
      {"three offsets", R"({"q":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", buf},
      {"metadata not string", R"({"__metadata__":{"a":1},"q":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", buf},
      {"empty name", R"({"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", buf},
      {"huge shape", R"({"q":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}})", buf},
  };
  for (const auto& c : cases) EXPECT_THROW(parse(make_file(c.header, c.buf)), tq::Error) << c.why;
  // Header length pointing past the end of the file, or beyond 100 MB.
  auto f = make_file(ok, buf);
  f[0] = 0xff;
  f[1] = 0xff;
  EXPECT_THROW(parse(f), tq::Error);
  f = make_file(ok, buf);
  f[7] = 0x01;
  EXPECT_THROW(parse(f), tq::Error);
  EXPECT_THROW(tq::safetensors_load("/nonexistent/x.safetensors"), tq::Error);
}

TEST(Safetensors, EveryTruncationIsRejected) {
  const auto f = make_file(R"({"q":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F16","shape":[1],"data_offsets":[8,10]}})",
                           [] { auto b = f32_bytes({1.f, 2.f}); b.push_back(0); b.push_back(0x3c); return b; }());
  ASSERT_NO_THROW(parse(f));
  for (size_t n = 0; n < f.size(); ++n) {
    std::vector<uint8_t> cut(f.begin(), f.begin() + n);  // exact-size copy: ASan sees over-reads
    EXPECT_THROW(tq::safetensors_parse(cut.data(), cut.size()), tq::Error) << "prefix of " << n << " bytes";
  }
}

TEST(Safetensors, WriterRoundTrip) {
  tq::NpyArray a;
  a.dtype = tq::DType::kF32;
  a.shape = {2, 1, 3};
  a.data = f32_bytes({1, -2, 3, -4, 5, -6.5f});
  tq::NpyArray b;
  b.dtype = tq::DType::kBF16;
  b.shape = {1};
  b.data = {0x80, 0x3f};  // 1.0
  const std::string path = testing::TempDir() + "/rt.safetensors";
  tq::safetensors_save(path, {{"k", a}, {"w", b}}, {{"who", "test"}});
  const auto st = tq::safetensors_load(path);
  EXPECT_EQ(st.at("k").shape, a.shape);
  EXPECT_EQ(st.at("k").data, a.data);
  EXPECT_EQ(st.at("w").to_f32(), std::vector<float>{1.0f});
  EXPECT_EQ(st.metadata.at("who"), "test");
  std::remove(path.c_str());
  EXPECT_TRUE(tq::is_safetensors_path("a/b.safetensors"));
  EXPECT_FALSE(tq::is_safetensors_path("a/b.npy"));
}

}  // namespace
