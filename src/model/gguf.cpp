// src/model/gguf.cpp — GGUF parsing with every count, length and offset checked against the bytes
// that remain before it is used (format and the list of checks: turboquant/model/gguf.h).
#include "turboquant/model/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "turboquant/error.h"

namespace tq::gguf {
namespace {

// Fixed byte size of a scalar value type, 0 for string / array / unknown.
size_t scalar_size(uint32_t t) {
  switch (ValueType(t)) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    case ValueType::kU64: case ValueType::kI64: case ValueType::kF64: return 8;
    default: return 0;
  }
}
bool known_value_type(uint32_t t) { return t <= uint32_t(ValueType::kF64); }

// Bounds-checked little-endian cursor over [p, end).
class Cursor {
 public:
  Cursor(const uint8_t* b, size_t n, const std::string& what) : base_(b), n_(n), what_(what) {}
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }
  const uint8_t* here() const { return base_ + pos_; }
  void need(size_t k, const char* for_what) const {
    TQ_CHECK_ARG(k <= left(), "{}: truncated: {} needs {} bytes at offset {}, only {} left", what_, for_what, k,
                 pos_, left());
  }
  template <class T>
  T read(const char* for_what) {
    need(sizeof(T), for_what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));  // the format is little-endian, as is every host we build for
    pos_ += sizeof(T);
    return v;
  }
  void skip(size_t k, const char* for_what) {
    need(k, for_what);
    pos_ += k;
  }
  std::string string(const char* for_what) {
    const uint64_t len = read<uint64_t>(for_what);
    need(len, for_what);
    std::string s(reinterpret_cast<const char*>(base_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }
  // A count of items each taking at least `min_item` bytes must fit in what is left: no hostile
  // count ever reaches an allocation.
  uint64_t count(uint64_t c, size_t min_item, const char* for_what) const {
    TQ_CHECK_ARG(min_item == 0 || c <= left() / min_item,
                 "{}: {} count {} cannot fit in the {} bytes left at offset {} (corrupt or truncated)", what_,
                 for_what, c, left(), pos_);
    return c;
  }
  const std::string& what() const { return what_; }

 private:
  const uint8_t* base_;
  size_t n_, pos_ = 0;
  const std::string& what_;
};

Value read_scalar(Cursor& c, uint32_t t) {
  Value v;
  v.type = ValueType(t);
  switch (ValueType(t)) {
    case ValueType::kU8: v.u = c.read<uint8_t>("u8 value"); break;
    case ValueType::kI8: v.i = c.read<int8_t>("i8 value"); break;
    case ValueType::kU16: v.u = c.read<uint16_t>("u16 value"); break;
    case ValueType::kI16: v.i = c.read<int16_t>("i16 value"); break;
    case ValueType::kU32: v.u = c.read<uint32_t>("u32 value"); break;
    case ValueType::kI32: v.i = c.read<int32_t>("i32 value"); break;
    case ValueType::kU64: v.u = c.read<uint64_t>("u64 value"); break;
    case ValueType::kI64: v.i = c.read<int64_t>("i64 value"); break;
    case ValueType::kF32: v.f = c.read<float>("f32 value"); break;
    case ValueType::kF64: v.f = c.read<double>("f64 value"); break;
    case ValueType::kBool: {
      const uint8_t b = c.read<uint8_t>("bool value");
      TQ_CHECK_ARG(b <= 1, "{}: bool value {} at offset {} (must be 0 or 1)", c.what(), b, c.pos() - 1);
      v.u = b;
      break;
    }
    default: TQ_FAIL(kInternal, "read_scalar: type {}", t);
  }
  return v;
}

Value read_value(Cursor& c, uint32_t t, int depth) {
  TQ_CHECK_ARG(known_value_type(t), "{}: unknown metadata value type {} at offset {}", c.what(), t, c.pos());
  if (ValueType(t) == ValueType::kString) {
    Value v;
    v.type = ValueType::kString;
    v.str = c.string("string value");
    return v;
  }
  if (ValueType(t) != ValueType::kArray) return read_scalar(c, t);
  TQ_CHECK_ARG(depth < kMaxArrayDepth, "{}: arrays nested deeper than {} at offset {}", c.what(), kMaxArrayDepth,
               c.pos());
  Value v;
  v.type = ValueType::kArray;
  const uint32_t et = c.read<uint32_t>("array element type");
  TQ_CHECK_ARG(known_value_type(et), "{}: unknown array element type {} at offset {}", c.what(), et, c.pos() - 4);
  v.elem = ValueType(et);
  const uint64_t n = c.read<uint64_t>("array length");
  if (const size_t sz = scalar_size(et)) {
    c.count(n, sz, "array");
    v.raw.assign(c.here(), c.here() + n * sz);
    if (v.elem == ValueType::kBool)
      for (uint8_t b : v.raw) TQ_CHECK_ARG(b <= 1, "{}: bool array element {} (must be 0 or 1)", c.what(), b);
    c.skip(n * sz, "array");
  } else if (v.elem == ValueType::kString) {
    c.count(n, 8, "string array");
    v.strs.reserve(n);
    for (uint64_t e = 0; e < n; ++e) v.strs.push_back(c.string("string array element"));
  } else {  // nested arrays: each is at least a type and a length (12 bytes)
    c.count(n, 12, "nested array");
    v.items.reserve(n);
    for (uint64_t e = 0; e < n; ++e) v.items.push_back(read_value(c, et, depth + 1));
  }
  v.count = n;
  return v;
}

constexpr TypeTraits kTraits[] = {
    /*0*/ {"F32", 1, 4, true},      /*1*/ {"F16", 1, 2, true},       /*2*/ {"Q4_0", 32, 18, true},
    /*3*/ {"Q4_1", 32, 20, false},  /*4*/ {nullptr, 0, 0, false},    /*5*/ {nullptr, 0, 0, false},
    /*6*/ {"Q5_0", 32, 22, false},  /*7*/ {"Q5_1", 32, 24, false},   /*8*/ {"Q8_0", 32, 34, true},
    /*9*/ {"Q8_1", 32, 36, false},  /*10*/ {"Q2_K", 256, 84, false}, /*11*/ {"Q3_K", 256, 110, false},
    /*12*/ {"Q4_K", 256, 144, false}, /*13*/ {"Q5_K", 256, 176, false}, /*14*/ {"Q6_K", 256, 210, false},
    /*15*/ {"Q8_K", 256, 292, false}, /*16..23: IQ types, not read*/ {nullptr, 0, 0, false},
    {nullptr, 0, 0, false}, {nullptr, 0, 0, false}, {nullptr, 0, 0, false}, {nullptr, 0, 0, false},
    {nullptr, 0, 0, false}, {nullptr, 0, 0, false}, {nullptr, 0, 0, false},
    /*24*/ {"I8", 1, 1, false},     /*25*/ {"I16", 1, 2, false},     /*26*/ {"I32", 1, 4, false},
    /*27*/ {"I64", 1, 8, false},    /*28*/ {"F64", 1, 8, false},     /*29*/ {nullptr, 0, 0, false},
    /*30*/ {"BF16", 1, 2, true},
};

struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr) munmap(addr, size);
  }
};

}  // namespace

const char* value_type_name(ValueType t) {
  static const char* const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                      "string", "array", "u64", "i64", "f64"};
  return uint32_t(t) <= 12 ? names[uint32_t(t)] : "?";
}

// ---- Value ---------------------------------------------------------------------------------

bool Value::is_int() const {
  switch (type) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kU16: case ValueType::kI16:
    case ValueType::kU32: case ValueType::kI32: case ValueType::kU64: case ValueType::kI64: return true;
    default: return false;
  }
}
bool Value::is_float() const { return type == ValueType::kF32 || type == ValueType::kF64; }

int64_t Value::as_int() const {
  TQ_CHECK_ARG(is_int(), "gguf: expected an integer value, found {}", value_type_name(type));
  if (type == ValueType::kU8 || type == ValueType::kU16 || type == ValueType::kU32 || type == ValueType::kU64) {
    TQ_CHECK_ARG(u <= uint64_t(std::numeric_limits<int64_t>::max()), "gguf: integer {} out of range", u);
    return int64_t(u);
  }
  return i;
}
double Value::as_double() const {
  if (is_float()) return f;
  return double(as_int());
}
bool Value::as_bool() const {
  TQ_CHECK_ARG(type == ValueType::kBool, "gguf: expected a bool value, found {}", value_type_name(type));
  return u != 0;
}
const std::string& Value::as_string() const {
  TQ_CHECK_ARG(type == ValueType::kString, "gguf: expected a string value, found {}", value_type_name(type));
  return str;
}

double Value::num_at(uint64_t e) const {
  TQ_CHECK_ARG(type == ValueType::kArray && scalar_size(uint32_t(elem)) != 0,
               "gguf: expected a numeric array, found {}", type == ValueType::kArray ? "array of strings/arrays"
                                                                                      : value_type_name(type));
  TQ_CHECK(e < count, kOutOfRange, "gguf: array index {} >= length {}", e, count);
  const uint8_t* p = raw.data() + e * scalar_size(uint32_t(elem));
  auto get = [p](auto x) {
    std::memcpy(&x, p, sizeof(x));
    return x;
  };
  switch (elem) {
    case ValueType::kU8: case ValueType::kBool: return get(uint8_t());
    case ValueType::kI8: return get(int8_t());
    case ValueType::kU16: return get(uint16_t());
    case ValueType::kI16: return get(int16_t());
    case ValueType::kU32: return get(uint32_t());
    case ValueType::kI32: return get(int32_t());
    case ValueType::kU64: return double(get(uint64_t()));
    case ValueType::kI64: return double(get(int64_t()));
    case ValueType::kF32: return get(float());
    case ValueType::kF64: return get(double());
    default: TQ_FAIL(kInternal, "num_at");
  }
}

int64_t Value::int_at(uint64_t e) const {
  TQ_CHECK_ARG(type == ValueType::kArray, "gguf: expected an array, found {}", value_type_name(type));
  TQ_CHECK_ARG(elem != ValueType::kF32 && elem != ValueType::kF64, "gguf: expected an integer array, found {}[]",
               value_type_name(elem));
  if (elem == ValueType::kU64 || elem == ValueType::kI64) {
    TQ_CHECK(e < count, kOutOfRange, "gguf: array index {} >= length {}", e, count);
    int64_t x;
    std::memcpy(&x, raw.data() + e * 8, 8);
    TQ_CHECK_ARG(elem == ValueType::kI64 || x >= 0, "gguf: integer out of range");
    return x;
  }
  return int64_t(num_at(e));
}

std::string Value::to_string(size_t max_items) const {
  switch (type) {
    case ValueType::kString: return str.size() > 80 ? "\"" + str.substr(0, 77) + "...\"" : "\"" + str + "\"";
    case ValueType::kBool: return u ? "true" : "false";
    case ValueType::kF32: case ValueType::kF64: return fmt::format("{}", f);
    case ValueType::kArray: {
      std::string s = fmt::format("{}[{}] {{", value_type_name(elem), count);
      const uint64_t k = std::min<uint64_t>(count, max_items);
      for (uint64_t e = 0; e < k; ++e) {
        if (e) s += ", ";
        if (elem == ValueType::kString) s += "\"" + strs[e] + "\"";
        else if (elem == ValueType::kArray) s += items[e].to_string(max_items);
        else s += fmt::format("{}", num_at(e));
      }
      return s + (k < count ? ", ...}" : "}");
    }
    default: return is_int() ? (type == ValueType::kU64 ? fmt::format("{}", u) : fmt::format("{}", as_int())) : "?";
  }
}

// ---- tensors -------------------------------------------------------------------------------

const TypeTraits* type_traits(uint32_t type) {
  if (type >= sizeof(kTraits) / sizeof(kTraits[0]) || !kTraits[type].name) return nullptr;
  return &kTraits[type];
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t x : ne) n *= x;  // cannot overflow: checked when the file was parsed
  return n;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// ---- File ----------------------------------------------------------------------------------

File File::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TQ_CHECK(fd >= 0, kIoError, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    TQ_FAIL(kIoError, "{}: not a regular file", path);
  }
  auto m = std::make_shared<Mapping>();
  m->size = size_t(st.st_size);
  if (m->size > 0) {
    void* a = mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (a == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      TQ_FAIL(kIoError, "{}: cannot map {} bytes: {}", path, m->size, std::strerror(e));
    }
    m->addr = a;
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  static const uint8_t kEmpty = 0;
  File f = parse(m->addr ? static_cast<const uint8_t*>(m->addr) : &kEmpty, m->size, path);
  f.mapping_ = std::move(m);
  return f;
}

File File::parse(const uint8_t* bytes, size_t n, const std::string& what) {
  File f;
  f.what_ = what;
  Cursor c(bytes, n, f.what_);
  TQ_CHECK_ARG(n >= 4 && std::memcmp(bytes, "GGUF", 4) == 0, "{}: not a GGUF file (magic is not \"GGUF\")", what);
  c.skip(4, "magic");
  f.version_ = c.read<uint32_t>("version");
  TQ_CHECK_ARG(f.version_ == 2 || f.version_ == 3, "{}: GGUF version {}; this reader reads versions 2 and 3", what,
               f.version_);
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  c.count(n_kv, 8 + 4 + 1, "metadata");        // key length + type + the smallest value
  c.count(n_tensors, 8 + 4 + 8 + 4 + 8, "tensor");  // name length + n_dims + one dim + type + offset

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.string("metadata key");
    TQ_CHECK_ARG(!key.empty(), "{}: empty metadata key (entry {})", what, k);
    const uint32_t t = c.read<uint32_t>("metadata value type");
    Value v = read_value(c, t, 0);
    TQ_CHECK_ARG(f.meta_.emplace(key, std::move(v)).second, "{}: duplicate metadata key '{}'", what, key);
  }
  if (const Value* a = f.find("general.alignment")) {
    TQ_CHECK_ARG(a->type == ValueType::kU32, "{}: general.alignment must be u32, is {}", what,
                 value_type_name(a->type));
    TQ_CHECK_ARG(a->u != 0 && (a->u & (a->u - 1)) == 0 && a->u <= (1u << 16),
                 "{}: general.alignment {} is not a power of two in [1, 65536]", what, a->u);
    f.alignment_ = uint32_t(a->u);
  }

  f.tensors_.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    TensorInfo t;
    t.name = c.string("tensor name");
    TQ_CHECK_ARG(!t.name.empty(), "{}: tensor {} has an empty name", what, k);
    const uint32_t nd = c.read<uint32_t>("tensor n_dims");
    TQ_CHECK_ARG(nd >= 1 && nd <= 4, "{}: tensor '{}' has {} dimensions (1..4 allowed)", what, t.name, nd);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t x = c.read<uint64_t>("tensor dim");
      TQ_CHECK_ARG(x <= uint64_t(std::numeric_limits<int64_t>::max()), "{}: tensor '{}' dim {} is negative", what,
                   t.name, d);
      TQ_CHECK_ARG(!__builtin_mul_overflow(numel, x, &numel) && numel <= (uint64_t(1) << 60),
                   "{}: tensor '{}' element count overflows", what, t.name);
      t.ne.push_back(int64_t(x));
    }
    const uint32_t type = c.read<uint32_t>("tensor type");
    const TypeTraits* tr = type_traits(type);
    TQ_CHECK_ARG(tr, "{}: tensor '{}' has unknown ggml type {}", what, t.name, type);
    t.type = GgmlType(type);
    TQ_CHECK_ARG(t.ne[0] % tr->block == 0, "{}: tensor '{}' ({}) row length {} is not a multiple of the block size {}",
                 what, t.name, tr->name, t.ne[0], tr->block);
    t.nbytes = numel / tr->block * tr->block_bytes;  // numel <= 2^60, block_bytes <= 292: no overflow
    t.offset = c.read<uint64_t>("tensor offset");
    TQ_CHECK_ARG(t.offset % f.alignment_ == 0, "{}: tensor '{}' offset {} is not a multiple of the alignment {}",
                 what, t.name, t.offset, f.alignment_);
    TQ_CHECK_ARG(f.tensor_index_.emplace(t.name, f.tensors_.size()).second, "{}: duplicate tensor name '{}'", what,
                 t.name);
    f.tensors_.push_back(std::move(t));
  }

  // Data section: the end of the tensor infos rounded up to the alignment. A file without tensors
  // may end right after its metadata.
  const uint64_t data = (uint64_t(c.pos()) + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  f.data_offset_ = data;
  if (!f.tensors_.empty())
    TQ_CHECK_ARG(data <= n, "{}: truncated: the data section would start at {}, the file has {} bytes", what, data, n);
  const uint64_t data_size = f.tensors_.empty() ? 0 : n - data;
  std::vector<std::pair<uint64_t, size_t>> order;  // (offset, index) to find overlaps
  for (size_t k = 0; k < f.tensors_.size(); ++k) {
    TensorInfo& t = f.tensors_[k];
    TQ_CHECK_ARG(t.offset <= data_size && t.nbytes <= data_size - t.offset,
                 "{}: tensor '{}' bytes [{}, {}) run past the end of the data section ({} bytes; truncated?)", what,
                 t.name, t.offset, t.offset + t.nbytes, data_size);
    t.data = bytes + data + t.offset;
    order.emplace_back(t.offset, k);
  }
  std::sort(order.begin(), order.end());
  for (size_t k = 1; k < order.size(); ++k) {
    const TensorInfo& a = f.tensors_[order[k - 1].second];
    const TensorInfo& b = f.tensors_[order[k].second];
    TQ_CHECK_ARG(a.offset + a.nbytes <= b.offset || a.nbytes == 0 || b.nbytes == 0,
                 "{}: tensors '{}' and '{}' overlap", what, a.name, b.name);
  }
  return f;
}

const Value* File::find(const std::string& key) const {
  auto it = meta_.find(key);
  return it == meta_.end() ? nullptr : &it->second;
}

const Value& File::at(const std::string& key) const {
  const Value* v = find(key);
  TQ_CHECK_ARG(v, "{}: metadata key '{}' is missing", what_, key);
  return *v;
}

int64_t File::get_int(const std::string& key) const {
  try {
    return at(key).as_int();
  } catch (const Error& e) {
    TQ_FAIL(kInvalidArgument, "{}: {}: {}", what_, key, e.what());
  }
}
int64_t File::get_int(const std::string& key, int64_t dflt) const { return find(key) ? get_int(key) : dflt; }

double File::get_float(const std::string& key) const {
  try {
    return at(key).as_double();
  } catch (const Error& e) {
    TQ_FAIL(kInvalidArgument, "{}: {}: {}", what_, key, e.what());
  }
}
double File::get_float(const std::string& key, double dflt) const { return find(key) ? get_float(key) : dflt; }

std::string File::get_string(const std::string& key) const {
  try {
    return at(key).as_string();
  } catch (const Error& e) {
    TQ_FAIL(kInvalidArgument, "{}: {}: {}", what_, key, e.what());
  }
}
std::string File::get_string(const std::string& key, const std::string& dflt) const {
  return find(key) ? get_string(key) : dflt;
}

const TensorInfo* File::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(const std::string& name) const {
  const TensorInfo* t = find_tensor(name);
  TQ_CHECK_ARG(t, "{}: no tensor named '{}'", what_, name);
  return *t;
}

std::vector<float> File::tensor_f32(const std::string& name, const std::vector<int64_t>& expect_ne) const {
  const TensorInfo& t = tensor(name);
  if (!expect_ne.empty()) {
    TensorInfo want;
    want.ne = expect_ne;
    TQ_CHECK_ARG(t.ne == expect_ne, "{}: tensor '{}' has shape {}, expected {}", what_, name, t.shape_string(),
                 want.shape_string());
  }
  std::vector<float> out(size_t(t.numel()));
  dequantize(t.type, t.data, out.data(), t.numel());
  return out;
}

}  // namespace tq::gguf
