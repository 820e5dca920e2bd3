// GGUF reader: files written by the test (gguf_writer.h) read back exactly; every malformed variant
// (cut at every byte, wrong magic, hostile counts, bad offsets, ...) is a tq::Error, never a crash;
// the shipped stories260K file has the shapes its README states.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "gguf_writer.h"
#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/model/gguf.h"

namespace {

using tq::gguf::File;
using tq::gguf::GgmlType;
using tq::gguf::ValueType;
using tqtest::GgufWriter;

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A small file with one entry of every metadata type and tensors of the five readable types.
GgufWriter sample_writer() {
  GgufWriter w;
  w.kv_str("general.architecture", "llama");
  w.kv_u8("t.u8", 200);
  w.kv_i8("t.i8", -100);
  w.kv_u16("t.u16", 60000);
  w.kv_i16("t.i16", -30000);
  w.kv_u32("t.u32", 4000000000u);
  w.kv_i32("t.i32", -2000000000);
  w.kv_u64("t.u64", 1ull << 40);
  w.kv_i64("t.i64", -(1ll << 40));
  w.kv_f32("t.f32", 0.25f);
  w.kv_f64("t.f64", -1e-300);
  w.kv_bool("t.bool", true);
  w.kv_strs("t.strs", {"a", "", "▁héllo"});
  w.kv_arr<float>("t.f32s", 6, {1.5f, -2.0f});
  w.kv_arr<int32_t>("t.i32s", 5, {7, -8, 9});
  // F32 [3, 2]: values i * 0.5
  w.tensor_f32("w.f32", {3, 2}, {0, 0.5f, 1, 1.5f, 2, 2.5f});
  // F16: halves of exactly representable values
  std::vector<uint8_t> h;
  for (float x : {1.0f, -0.5f, 65504.0f, 0.000061035156f}) GgufWriter::put_to(h, tq::float_to_half(x));
  w.tensor("w.f16", {4}, 1, h);
  std::vector<uint8_t> bf;
  for (float x : {1.0f, -3.0f, 1.5f, 1e30f}) GgufWriter::put_to(bf, tq::float_to_bf16(x));
  w.tensor("w.bf16", {2, 2}, 30, bf);
  // Q8_0, 2 blocks: d = 0.5 / 0.25, q = j - 16 / -j
  std::vector<uint8_t> q8;
  for (int b = 0; b < 2; ++b) {
    GgufWriter::put_to(q8, tq::float_to_half(b ? 0.25f : 0.5f));
    for (int j = 0; j < 32; ++j) q8.push_back(uint8_t(int8_t(b ? -j : j - 16)));
  }
  w.tensor("w.q8_0", {64}, 8, q8);
  // Q4_0, 1 block: d = 2, byte j = (low j % 16, high 15 - j % 16)
  std::vector<uint8_t> q4;
  GgufWriter::put_to(q4, tq::float_to_half(2.0f));
  for (int j = 0; j < 16; ++j) q4.push_back(uint8_t(j | (15 - j) << 4));
  w.tensor("w.q4_0", {32}, 2, q4);
  return w;
}

File parse(const std::vector<uint8_t>& b) { return File::parse(b.data(), b.size(), "test"); }

TEST(Gguf, ReadsEveryMetadataType) {
  const auto bytes = sample_writer().bytes();
  const File f = parse(bytes);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 15u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("t.u8"), 200);
  EXPECT_EQ(f.get_int("t.i8"), -100);
  EXPECT_EQ(f.get_int("t.u16"), 60000);
  EXPECT_EQ(f.get_int("t.i16"), -30000);
  EXPECT_EQ(f.get_int("t.u32"), 4000000000ll);
  EXPECT_EQ(f.get_int("t.i32"), -2000000000);
  EXPECT_EQ(f.get_int("t.u64"), 1ll << 40);
  EXPECT_EQ(f.get_int("t.i64"), -(1ll << 40));
  EXPECT_EQ(f.get_float("t.f32"), 0.25);
  EXPECT_EQ(f.get_float("t.f64"), -1e-300);
  EXPECT_TRUE(f.at("t.bool").as_bool());
  const auto& s = f.at("t.strs");
  ASSERT_EQ(s.elem, ValueType::kString);
  EXPECT_EQ(s.strs, (std::vector<std::string>{"a", "", "▁héllo"}));
  EXPECT_EQ(f.at("t.f32s").num_at(1), -2.0);
  EXPECT_EQ(f.at("t.i32s").int_at(1), -8);
  EXPECT_EQ(f.at("t.i32s").count, 3u);
  EXPECT_THROW(f.at("t.i32s").num_at(3), tq::Error);
  EXPECT_THROW(f.at("t.f32s").int_at(0), tq::Error);
  // Defaults, type mismatches and absent keys
  EXPECT_EQ(f.get_int("absent", 42), 42);
  EXPECT_EQ(f.get_float("absent", 1.5), 1.5);
  EXPECT_THROW(f.get_int("absent"), tq::Error);
  EXPECT_THROW(f.get_int("general.architecture"), tq::Error);
  EXPECT_THROW(f.get_string("t.u8"), tq::Error);
}

TEST(Gguf, ReadsAndDequantizesTensors) {
  const auto bytes = sample_writer().bytes();
  const File f = parse(bytes);
  ASSERT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  const auto& t = f.tensor("w.f32");
  EXPECT_EQ(t.ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes, 24u);
  EXPECT_EQ(f.tensor_f32("w.f32", {3, 2}), (std::vector<float>{0, 0.5f, 1, 1.5f, 2, 2.5f}));
  EXPECT_THROW(f.tensor_f32("w.f32", {2, 3}), tq::Error);
  EXPECT_EQ(f.tensor_f32("w.f16"), (std::vector<float>{1.0f, -0.5f, 65504.0f, 0.000061035156f}));
  const auto bf = f.tensor_f32("w.bf16");
  EXPECT_EQ(bf[0], 1.0f);
  EXPECT_EQ(bf[1], -3.0f);
  EXPECT_EQ(bf[2], 1.5f);
  EXPECT_NEAR(bf[3] / 1e30f, 1.0, 1.0 / 128);  // bf16 keeps 8 significant bits
  const auto q8 = f.tensor_f32("w.q8_0");
  ASSERT_EQ(q8.size(), 64u);
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(q8[j], 0.5f * float(j - 16));
    EXPECT_EQ(q8[32 + j], -0.25f * float(j));
  }
  const auto q4 = f.tensor_f32("w.q4_0");
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(q4[j], 2.0f * float(j - 8));
    EXPECT_EQ(q4[j + 16], 2.0f * float(7 - j));
  }
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  EXPECT_THROW(f.tensor("nope"), tq::Error);
}

TEST(Gguf, HonoursCustomAlignment) {
  GgufWriter w;
  w.alignment = 64;
  w.kv_u32("general.alignment", 64);
  w.tensor_f32("a", {3}, {1, 2, 3});
  w.tensor_f32("b", {2}, {4, 5});
  const auto bytes = w.bytes();
  const File f = parse(bytes);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensor("b").offset, 64u);
  EXPECT_EQ(f.tensor_f32("b"), (std::vector<float>{4, 5}));
}

TEST(Gguf, OpensThroughMmap) {
  const std::string path = ::testing::TempDir() + "/tq_test_sample.gguf";
  sample_writer().save(path);
  {
    const File f = File::open(path);
    EXPECT_EQ(f.tensor_f32("w.f32")[5], 2.5f);
  }
  std::remove(path.c_str());
  try {
    File::open(path);
    FAIL() << "missing file accepted";
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kIoError);
  }
  try {
    File::open(::testing::TempDir());
    FAIL() << "directory accepted";
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kIoError);
  }
  const std::string empty = ::testing::TempDir() + "/tq_test_empty.gguf";
  { std::ofstream o(empty); }
  EXPECT_THROW(File::open(empty), tq::Error);
  std::remove(empty.c_str());
}

// Every prefix of a valid file is rejected with a tq::Error (it is missing bytes the header promises).
TEST(Gguf, TruncationAtEveryByteIsAnError) {
  const auto bytes = sample_writer().bytes();
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::vector<uint8_t> b(bytes.begin(), bytes.begin() + cut);  // exact-size copy: ASan sees overreads
    try {
      parse(b);
      ADD_FAILURE() << "a file cut at " << cut << " of " << bytes.size() << " bytes was accepted";
    } catch (const tq::Error& e) {
      EXPECT_TRUE(e.status() == tq::Status::kInvalidArgument || e.status() == tq::Status::kIoError) << cut;
    }
  }
}

// Random byte corruption: either the file still parses (and its tensors stay inside the buffer) or
// a tq::Error comes back; nothing else.
TEST(Gguf, RandomCorruptionNeverCrashes) {
  const auto bytes = sample_writer().bytes();
  std::mt19937 rng(7);
  int accepted = 0;
  for (int it = 0; it < 3000; ++it) {
    auto b = bytes;
    const int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = uint8_t(rng());
    try {
      const File f = parse(b);
      ++accepted;
      for (const auto& t : f.tensors()) {
        ASSERT_GE(t.data, b.data());
        ASSERT_LE(t.data + t.nbytes, b.data() + b.size());
        if (tq::gguf::type_traits(uint32_t(t.type))->dequantizable) f.tensor_f32(t.name);
      }
    } catch (const tq::Error&) {
    }
  }
  EXPECT_GT(accepted, 0);  // flips inside tensor data or string bytes keep the file valid
}

std::vector<uint8_t> header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
  std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
  GgufWriter::put_to(b, version);
  GgufWriter::put_to(b, n_tensors);
  GgufWriter::put_to(b, n_kv);
  return b;
}

void expect_error(const std::vector<uint8_t>& b, const std::string& needle) {
  try {
    parse(b);
    ADD_FAILURE() << "accepted; expected an error mentioning '" << needle << "'";
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Gguf, RejectsMalformedHeaders) {
  auto good = header(0, 0);
  EXPECT_NO_THROW(parse(good));
  auto bad_magic = good;
  bad_magic[0] = 'X';
  expect_error(bad_magic, "magic");
  expect_error(header(0, 0, 1), "version 1");
  expect_error(header(0, 0, 4), "version 4");
  expect_error(header(0, 1ull << 62), "metadata count");
  expect_error(header(1ull << 62, 0), "tensor count");
  expect_error(header(~0ull, ~0ull), "count");
}

TEST(Gguf, RejectsMalformedMetadata) {
  auto with_kv = [](std::initializer_list<std::vector<uint8_t>> kvs) {
    auto b = header(0, kvs.size());
    for (const auto& kv : kvs) b.insert(b.end(), kv.begin(), kv.end());
    return b;
  };
  auto entry = [](const std::string& key, uint32_t type, const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> b;
    GgufWriter::str(b, key);
    GgufWriter::put_to(b, type);
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
  };
  auto u64 = [](uint64_t v) {
    std::vector<uint8_t> b;
    GgufWriter::put_to(b, v);
    return b;
  };
  auto cat = [](std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const std::vector<uint8_t> u32_1 = {1, 0, 0, 0};
  EXPECT_NO_THROW(parse(with_kv({entry("k", 4, u32_1)})));
  expect_error(with_kv({entry("k", 13, u32_1)}), "unknown metadata value type 13");
  expect_error(with_kv({entry("k", 4, u32_1), entry("k", 4, u32_1)}), "duplicate metadata key");
  expect_error(with_kv({entry("", 4, u32_1)}), "empty metadata key");
  expect_error(with_kv({entry("k", 7, {2})}), "bool");
  // a key whose length runs far past the end
  auto long_key = header(0, 1);
  long_key = cat(long_key, u64(1ull << 60));
  long_key = cat(long_key, {'a', 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0});
  expect_error(long_key, "truncated");
  // string value longer than the file
  expect_error(with_kv({entry("k", 8, cat(u64(1000), {'x'}))}), "truncated");
  // arrays: huge counts of each element family, unknown element type, nesting too deep
  expect_error(with_kv({entry("k", 9, cat({4, 0, 0, 0}, cat(u64(1ull << 61), std::vector<uint8_t>(16))))}),
               "array count");
  expect_error(with_kv({entry("k", 9, cat({8, 0, 0, 0}, cat(u64(1ull << 61), std::vector<uint8_t>(16))))}),
               "string array count");
  expect_error(with_kv({entry("k", 9, cat({9, 0, 0, 0}, cat(u64(~0ull), std::vector<uint8_t>(16))))}),
               "nested array count");
  expect_error(with_kv({entry("k", 9, cat({14, 0, 0, 0}, u64(0)))}), "unknown array element type");
  std::vector<uint8_t> nested = cat({4, 0, 0, 0}, u64(0));  // innermost: empty u32 array
  for (int d = 0; d < tq::gguf::kMaxArrayDepth; ++d) nested = cat(cat({9, 0, 0, 0}, u64(1)), nested);
  expect_error(with_kv({entry("k", 9, nested)}), "nested deeper");
  std::vector<uint8_t> ok_nested = cat(cat({9, 0, 0, 0}, u64(1)), cat({4, 0, 0, 0}, cat(u64(1), u32_1)));
  const auto ok_bytes = with_kv({entry("k", 9, ok_nested)});
  const File f = parse(ok_bytes);
  EXPECT_EQ(f.at("k").items.at(0).int_at(0), 1);
  // general.alignment: wrong type, zero, not a power of two
  expect_error(with_kv({entry("general.alignment", 5, u32_1)}), "must be u32");
  expect_error(with_kv({entry("general.alignment", 4, {0, 0, 0, 0})}), "power of two");
  expect_error(with_kv({entry("general.alignment", 4, {24, 0, 0, 0})}), "power of two");
}

TEST(Gguf, RejectsMalformedTensorInfos) {
  // One tensor info from the given fields plus `data_bytes` of data after the aligned header.
  auto file = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset,
                 size_t data_bytes, uint32_t n_dims_override = 0) {
    auto b = header(1, 0);
    GgufWriter::str(b, name);
    GgufWriter::put_to(b, n_dims_override ? n_dims_override : uint32_t(ne.size()));
    for (uint64_t x : ne) GgufWriter::put_to(b, x);
    GgufWriter::put_to(b, type);
    GgufWriter::put_to(b, offset);
    while (b.size() % 32) b.push_back(0);
    b.resize(b.size() + data_bytes);
    return b;
  };
  EXPECT_NO_THROW(parse(file("t", {4, 2}, 0, 0, 32)));
  {  // an empty tensor is legal and dequantizes to nothing
    const auto b = file("t", {0, 3}, 0, 0, 0);
    const File f = parse(b);
    EXPECT_TRUE(f.tensor_f32("t").empty());
  }
  expect_error(file("t", {4, 2}, 0, 0, 31), "past the end");
  expect_error(file("t", {4, 2}, 0, 32, 32), "past the end");
  expect_error(file("t", {4, 2}, 0, ~0ull - 31, 32), "past the end");
  expect_error(file("t", {4, 2}, 0, 4, 64), "not a multiple of the alignment");
  expect_error(file("t", {4, 2}, 99, 0, 32), "unknown ggml type 99");
  expect_error(file("t", {4, 2}, 4, 0, 32), "unknown ggml type 4");
  expect_error(file("t", {16}, 8, 0, 64), "block size");
  expect_error(file("", {4}, 0, 0, 32), "empty name");
  expect_error(file("t", {}, 0, 0, 32), "dimensions");
  expect_error(file("t", {1, 1, 1, 1, 1}, 0, 0, 32), "dimensions");
  expect_error(file("t", {1ull << 63, 2}, 0, 0, 32), "negative");
  expect_error(file("t", {1ull << 40, 1ull << 40}, 0, 0, 32), "overflows");
  expect_error(file("t", {1ull << 59, 2, 2}, 0, 0, 32), "overflows");
  // duplicate names and overlapping data
  auto two = [](uint64_t off_b, const std::string& name_b) {
    auto b = header(2, 0);
    for (int k = 0; k < 2; ++k) {
      GgufWriter::str(b, k ? name_b : "a");
      GgufWriter::put_to(b, uint32_t(1));
      GgufWriter::put_to(b, uint64_t(16));  // 64 bytes of F32
      GgufWriter::put_to(b, uint32_t(0));
      GgufWriter::put_to(b, k ? off_b : uint64_t(0));
    }
    while (b.size() % 32) b.push_back(0);
    b.resize(b.size() + 256);
    return b;
  };
  EXPECT_NO_THROW(parse(two(64, "b")));
  expect_error(two(64, "a"), "duplicate tensor name");
  expect_error(two(32, "b"), "overlap");
  expect_error(two(0, "b"), "overlap");
  // dequantizing a known but unsupported type is kUnsupported
  const auto q4k = file("t", {256}, 12, 0, 160);
  const File f = parse(q4k);
  try {
    f.tensor_f32("t");
    FAIL();
  } catch (const tq::Error& e) {
    EXPECT_EQ(e.status(), tq::Status::kUnsupported);
  }
}

TEST(Gguf, Stories260KHasTheDocumentedShapes) {
  const std::string path = std::string(TQ_SHARED_DIR) + "/data/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "needs " << path << " (../shared/data)";
  const File f = File::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f.get_int("llama.block_count"), 5);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 172);
  EXPECT_EQ(f.at("tokenizer.ggml.tokens").count, 512u);
  EXPECT_EQ(f.tensor("token_embd.weight").ne, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(f.tensor("blk.0.attn_k.weight").ne, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(f.tensor("blk.4.ffn_gate.weight").ne, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(f.tensor("blk.4.ffn_down.weight").ne, (std::vector<int64_t>{172, 64}));
  for (const auto& t : f.tensors()) EXPECT_EQ(t.type, GgmlType::kF32) << t.name;
}

}  // namespace
