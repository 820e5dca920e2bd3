// turboquant/model/gguf.h — strict, memory-mapped GGUF v2/v3 reader.
//
// File layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), all little-endian:
//   "GGUF" magic, uint32 version, uint64 tensor_count, uint64 metadata_kv_count
//   metadata_kv_count x { string key, uint32 value_type, value }
//   tensor_count x { string name, uint32 n_dims, uint64 ne[n_dims], uint32 ggml_type, uint64 offset }
//   padding to general.alignment (default 32), then the data section; tensor i's bytes start at
//   data_start + offset_i (a multiple of the alignment).
//   string = uint64 length + bytes (no terminator); array = uint32 element type, uint64 count, items.
// ne[0] is the fastest-varying axis: a [rows, cols] row-major matrix has ne = {cols, rows}.
//
// What the reader rejects (tq::Error kInvalidArgument naming the source and the problem; kIoError
// for a file that cannot be opened or mapped) before anything is allocated or read from a count:
//   - bad magic, a version other than 2 or 3, counts that cannot fit in the rest of the file
//   - a string, array or value running past the end; unknown value types; arrays nested deeper
//     than kMaxArrayDepth; duplicate or empty keys; general.alignment not a power-of-two uint32
//   - duplicate or empty tensor names, n_dims outside 1..4, negative dims or an element count whose
//     byte size overflows, unknown ggml types, a row length that is not a multiple of the type's
//     block size, an offset that is not aligned, tensor bytes past the end of the file, overlaps.
// Known-but-unsupported tensor types (k-quants, ...) load (their byte size is known and checked);
// dequantizing them throws kUnsupported.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tq::gguf {

enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* value_type_name(ValueType t);

inline constexpr int kMaxArrayDepth = 4;  // arrays of arrays of ... (GGUF writers use depth 1)

// One metadata value. Scalars sit in u / i / f (the member that matches the type family);
// arrays keep numeric elements as their raw little-endian bytes (compact: a hostile count costs
// no more memory than the file holds), strings and nested arrays as objects.
struct Value {
  ValueType type = ValueType::kU8;
  uint64_t u = 0;        // kU8 .. kU64 (unsigned), kBool (0/1)
  int64_t i = 0;         // kI8 .. kI64
  double f = 0;          // kF32, kF64
  std::string str;       // kString
  // kArray:
  ValueType elem = ValueType::kU8;
  uint64_t count = 0;
  std::vector<uint8_t> raw;         // numeric / bool elements, count * size of elem
  std::vector<std::string> strs;    // string elements
  std::vector<Value> items;         // array elements (nested arrays)

  bool is_int() const;    // any integer type (not bool)
  bool is_float() const;  // kF32 / kF64
  // Scalar conversions; throw kInvalidArgument on a type mismatch or an out-of-range value.
  int64_t as_int() const;
  double as_double() const;  // integers and floats
  bool as_bool() const;
  const std::string& as_string() const;
  // Numeric array element e (integer or float element types) as double / int64.
  double num_at(uint64_t e) const;
  int64_t int_at(uint64_t e) const;
  std::string to_string(size_t max_items = 8) const;  // for `tq` listings and messages
};

// ggml tensor types; numbers are ggml's (never reused there either).
enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15,
  kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kBF16 = 30,
};
struct TypeTraits {
  const char* name;
  uint32_t block;       // elements per block
  uint32_t block_bytes; // bytes per block
  bool dequantizable;   // dequantize() supports it
};
// Traits of a type number; nullptr for a number this reader does not know.
const TypeTraits* type_traits(uint32_t type);

// Converts n elements (a multiple of the type's block size) of `type` at src to floats.
// Supported: F32, F16, BF16, Q8_0, Q4_0; others throw kUnsupported. src holds the exact bytes.
void dequantize(GgmlType type, const uint8_t* src, float* dst, int64_t n);

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;    // ggml order: ne[0] fastest
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;        // relative to the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the file's bytes (valid while the File lives)
  int64_t numel() const;
  std::string shape_string() const;  // "[64, 512]" in ggml order
};

class File {
 public:
  // Memory-maps `path` (read-only) and parses it. kIoError when it cannot be opened/mapped.
  static File open(const std::string& path);
  // Parses bytes[0, n) without copying: the buffer must outlive the File and every TensorInfo.data.
  // `what` names the source in error messages.
  static File parse(const uint8_t* bytes, size_t n, const std::string& what = "gguf");

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the data section in the file
  const std::string& source() const { return what_; }

  const std::map<std::string, Value>& metadata() const { return meta_; }
  const Value* find(const std::string& key) const;  // nullptr when absent
  // Typed getters: throw kInvalidArgument when absent (no default) or of the wrong type.
  const Value& at(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t dflt) const;
  double get_float(const std::string& key, double dflt) const;
  double get_float(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& dflt) const;
  std::string get_string(const std::string& key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;  // nullptr when absent
  const TensorInfo& tensor(const std::string& name) const;       // throws kInvalidArgument
  // The tensor as floats (dequantized), ne[0] fastest. `expect_ne`, when non-empty, must equal ne.
  std::vector<float> tensor_f32(const std::string& name, const std::vector<int64_t>& expect_ne = {}) const;

 private:
  File() = default;
  std::shared_ptr<void> mapping_;  // keeps the mmap alive (empty for parse())
  std::string what_;
  uint32_t version_ = 0, alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, Value> meta_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace tq::gguf
