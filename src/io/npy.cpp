// src/io/npy.cpp — strict .npy reader/writer (see turboquant/npy.h).
#include "turboquant/npy.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "turboquant/error.h"
#include "turboquant/half.h"

namespace tq {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    case DType::kF64: return "float64";
    case DType::kI64: return "int64";
    case DType::kI32: return "int32";
    case DType::kU8: return "uint8";
  }
  return "?";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: case DType::kI32: return 4;
    case DType::kF16: case DType::kBF16: return 2;
    case DType::kF64: case DType::kI64: return 8;
    case DType::kU8: return 1;
  }
  return 0;
}

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

std::vector<float> NpyArray::to_f32() const {
  const size_t n = size_t(numel());
  std::vector<float> out(n);
  if (n == 0) return out;  // (memcpy from an empty vector's null data is undefined)
  switch (dtype) {
    case DType::kF32: std::memcpy(out.data(), data.data(), n * 4); break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) { uint16_t h; std::memcpy(&h, &data[2 * i], 2); out[i] = half_to_float(h); }
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) { uint16_t h; std::memcpy(&h, &data[2 * i], 2); out[i] = bf16_to_float(h); }
      break;
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) { double v; std::memcpy(&v, &data[8 * i], 8); out[i] = float(v); }
      break;
    default: TQ_FAIL(kInvalidArgument, "npy: expected a float array, got {}", dtype_name(dtype));
  }
  return out;
}

namespace {

// Finds `'key':` in the header dict and returns the position just after the colon.
size_t find_key(const std::string& h, const char* key) {
  const std::string k1 = std::string("'") + key + "'";
  size_t p = h.find(k1);
  TQ_CHECK_ARG(p != std::string::npos, "npy: header has no '{}' entry", key);
  p = h.find(':', p + k1.size());
  TQ_CHECK_ARG(p != std::string::npos, "npy: malformed header near '{}'", key);
  return p + 1;
}

DType parse_descr(const std::string& d) {
  static const struct { const char* s; DType t; } table[] = {
      {"<f4", DType::kF32}, {"<f2", DType::kF16}, {"<f8", DType::kF64}, {"<i8", DType::kI64},
      {"<i4", DType::kI32}, {"|u1", DType::kU8},  {"<u1", DType::kU8},  {"|i1", DType::kU8}};
  for (auto& e : table) if (d == e.s) return e.t;
  TQ_FAIL(kInvalidArgument, "npy: unsupported dtype '{}' (expected little-endian f4/f2/f8/i8/i4/u1)", d);
}

}  // namespace

NpyArray npy_parse(const uint8_t* bytes, size_t n) {
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  TQ_CHECK_ARG(n >= 10 && std::memcmp(bytes, magic, 6) == 0, "npy: not a .npy file (bad magic)");
  const int major = bytes[6];
  TQ_CHECK_ARG(major >= 1 && major <= 3, "npy: unsupported format version {}", major);
  size_t hlen = 0, hoff = 0;
  if (major == 1) {
    hlen = size_t(bytes[8]) | size_t(bytes[9]) << 8;
    hoff = 10;
  } else {
    TQ_CHECK_ARG(n >= 12, "npy: truncated header");
    hlen = size_t(bytes[8]) | size_t(bytes[9]) << 8 | size_t(bytes[10]) << 16 | size_t(bytes[11]) << 24;
    hoff = 12;
  }
  TQ_CHECK_ARG(hlen <= n - hoff, "npy: truncated header ({} bytes announced, {} present)", hlen, n - hoff);
  const std::string h(reinterpret_cast<const char*>(bytes + hoff), hlen);

  NpyArray a;
  // descr
  size_t p = find_key(h, "descr");
  size_t q1 = h.find('\'', p);
  size_t q2 = q1 == std::string::npos ? q1 : h.find('\'', q1 + 1);
  TQ_CHECK_ARG(q2 != std::string::npos, "npy: malformed descr");
  a.dtype = parse_descr(h.substr(q1 + 1, q2 - q1 - 1));
  // fortran_order
  p = find_key(h, "fortran_order");
  while (p < h.size() && h[p] == ' ') ++p;
  TQ_CHECK_ARG(h.compare(p, 5, "False") == 0, "npy: Fortran-ordered arrays are not supported");
  // shape
  p = find_key(h, "shape");
  size_t o = h.find('(', p), c = o == std::string::npos ? o : h.find(')', o);
  TQ_CHECK_ARG(c != std::string::npos, "npy: malformed shape");
  const std::string sh = h.substr(o + 1, c - o - 1);
  size_t i = 0;
  while (i < sh.size()) {
    while (i < sh.size() && (sh[i] == ' ' || sh[i] == ',')) ++i;
    if (i >= sh.size()) break;
    TQ_CHECK_ARG(sh[i] >= '0' && sh[i] <= '9', "npy: malformed shape '{}'", sh);
    int64_t v = 0;
    while (i < sh.size() && sh[i] >= '0' && sh[i] <= '9') {
      TQ_CHECK_ARG(v < (int64_t(1) << 40), "npy: dimension too large in shape '{}'", sh);
      v = v * 10 + (sh[i++] - '0');
    }
    a.shape.push_back(v);
    TQ_CHECK_ARG(a.shape.size() <= 8, "npy: more than 8 dimensions");
  }
  // size
  __int128 total = dtype_size(a.dtype);
  for (auto s : a.shape) {
    total *= s;
    TQ_CHECK_ARG(total <= (__int128(1) << 42), "npy: array too large");
  }
  const size_t data_off = hoff + hlen;
  TQ_CHECK_ARG(size_t(total) == n - data_off, "npy: data size mismatch: header says {} bytes, file has {}",
               size_t(total), n - data_off);
  a.data.assign(bytes + data_off, bytes + n);
  return a;
}

NpyArray npy_load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  TQ_CHECK(f.good(), kIoError, "cannot open '{}'", path);
  std::vector<uint8_t> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  try {
    return npy_parse(buf.data(), buf.size());
  } catch (const Error& e) {
    throw Error(e.status(), fmt::format("{}: {}", path, e.what()));
  }
}

void npy_save(const std::string& path, const NpyArray& a) {
  const char* descr = nullptr;
  switch (a.dtype) {
    case DType::kF32: descr = "<f4"; break;
    case DType::kF16: descr = "<f2"; break;
    case DType::kF64: descr = "<f8"; break;
    case DType::kI64: descr = "<i8"; break;
    case DType::kI32: descr = "<i4"; break;
    case DType::kU8: descr = "|u1"; break;
    case DType::kBF16: TQ_FAIL(kInvalidArgument, "npy: bfloat16 has no .npy dtype");
  }
  std::string shape = "(";
  for (size_t i = 0; i < a.shape.size(); ++i) shape += fmt::format("{}{}", a.shape[i], a.shape.size() == 1 ? "," : (i + 1 < a.shape.size() ? ", " : ""));
  shape += ")";
  std::string h = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape);
  const size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  TQ_CHECK(f.good(), kIoError, "cannot write '{}'", path);
  const uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, uint8_t(h.size() & 0xff), uint8_t(h.size() >> 8)};
  f.write(reinterpret_cast<const char*>(pre), 10);
  f.write(h.data(), std::streamsize(h.size()));
  f.write(reinterpret_cast<const char*>(a.data.data()), std::streamsize(a.data.size()));
  TQ_CHECK(f.good(), kIoError, "write to '{}' failed", path);
}

void npy_save_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  NpyArray a;
  a.dtype = DType::kF32;
  a.shape = shape;
  a.data.resize(size_t(a.numel()) * 4);
  if (!a.data.empty()) std::memcpy(a.data.data(), data, a.data.size());
  npy_save(path, a);
}

}  // namespace tq
