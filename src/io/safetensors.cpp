// src/io/safetensors.cpp — strict .safetensors reader / writer (format and checks: safetensors.h).
#include "turboquant/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>

#include "turboquant/error.h"

namespace tq {
namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit (100 MB)

struct DtypeName { const char* name; DType t; };
constexpr DtypeName kDtypes[] = {{"F64", DType::kF64}, {"F32", DType::kF32}, {"F16", DType::kF16},
                                 {"BF16", DType::kBF16}, {"I64", DType::kI64}, {"I32", DType::kI32},
                                 {"U8", DType::kU8}};

const char* st_name(DType t) {
  for (const auto& d : kDtypes)
    if (d.t == t) return d.name;
  return "?";
}

}  // namespace

bool is_safetensors_path(const std::string& path) {
  const std::string ext = ".safetensors";
  return path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0;
}

const NpyArray& SafeTensors::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it != tensors.end()) return it->second;
  std::string have;
  for (const auto& [k, v] : tensors) have += (have.empty() ? "" : ", ") + k;
  TQ_FAIL(kInvalidArgument, "safetensors: no tensor named '{}' (present: {})", name, have.empty() ? "none" : have);
}

SafeTensors safetensors_parse(const uint8_t* bytes, size_t n, const std::string& what) {
  TQ_CHECK_ARG(n >= 8, "{}: {} bytes, too short for a safetensors file (8-byte header size first)", what, n);
  uint64_t hn = 0;
  for (int i = 7; i >= 0; --i) hn = hn << 8 | bytes[i];
  TQ_CHECK_ARG(hn <= kMaxHeader, "{}: header size {} exceeds the format's 100 MB limit", what, hn);
  TQ_CHECK_ARG(hn <= n - 8, "{}: header size {} but only {} bytes follow (truncated?)", what, hn, n - 8);
  TQ_CHECK_ARG(hn >= 2 && bytes[8] == '{', "{}: the header must be a JSON object starting with '{{'", what);
  const char* h = reinterpret_cast<const char*>(bytes + 8);
  // Duplicate keys would silently shadow each other in a JSON object: reject them.
  std::vector<std::set<std::string>> keys_at_depth;
  const auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    // object_start reports the parent's depth, key the depth of the object being read.
    if (ev == E::object_start) {
      if (keys_at_depth.size() < size_t(depth) + 2) keys_at_depth.resize(size_t(depth) + 2);
      keys_at_depth[size_t(depth) + 1].clear();
    } else if (ev == E::key) {
      if (keys_at_depth.size() < size_t(depth) + 1) keys_at_depth.resize(size_t(depth) + 1);
      auto& seen = keys_at_depth[size_t(depth)];
      const std::string k = parsed.get<std::string>();
      TQ_CHECK_ARG(seen.insert(k).second, "{}: duplicate key '{}' in the header", what, k);
    }
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(h, h + hn, cb);
  } catch (const nlohmann::json::exception& e) {
    TQ_FAIL(kInvalidArgument, "{}: the header is not valid JSON ({})", what, e.what());
  }
  TQ_CHECK_ARG(j.is_object(), "{}: the header must be a JSON object", what);

  SafeTensors st;
  const uint8_t* buf = bytes + 8 + hn;
  const uint64_t buf_size = n - 8 - hn;
  struct Span { uint64_t b, e; std::string name; };
  std::vector<Span> spans;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      TQ_CHECK_ARG(v.is_object(), "{}: __metadata__ must be an object of strings", what);
      for (auto m = v.begin(); m != v.end(); ++m) {
        TQ_CHECK_ARG(m.value().is_string(), "{}: __metadata__['{}'] is not a string", what, m.key());
        st.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    TQ_CHECK_ARG(!name.empty(), "{}: empty tensor name", what);
    TQ_CHECK_ARG(v.is_object(), "{}: tensor '{}': entry must be an object", what, name);
    for (auto f = v.begin(); f != v.end(); ++f)
      TQ_CHECK_ARG(f.key() == "dtype" || f.key() == "shape" || f.key() == "data_offsets",
                   "{}: tensor '{}': unknown field '{}'", what, name, f.key());
    TQ_CHECK_ARG(v.contains("dtype") && v["dtype"].is_string(), "{}: tensor '{}': missing string 'dtype'", what, name);
    TQ_CHECK_ARG(v.contains("shape") && v["shape"].is_array(), "{}: tensor '{}': missing array 'shape'", what, name);
    TQ_CHECK_ARG(v.contains("data_offsets") && v["data_offsets"].is_array() && v["data_offsets"].size() == 2,
                 "{}: tensor '{}': 'data_offsets' must be [begin, end]", what, name);
    NpyArray a;
    const std::string dt = v["dtype"].get<std::string>();
    bool known = false;
    for (const auto& d : kDtypes)
      if (dt == d.name) { a.dtype = d.t; known = true; }
    TQ_CHECK_ARG(known, "{}: tensor '{}': dtype '{}' not supported (F64, F32, F16, BF16, I64, I32, U8)", what, name, dt);
    uint64_t numel = 1;
    for (const auto& s : v["shape"]) {
      TQ_CHECK_ARG(s.is_number_unsigned(), "{}: tensor '{}': shape entries must be non-negative integers", what, name);
      const uint64_t e = s.get<uint64_t>();
      TQ_CHECK_ARG(e == 0 || numel <= (uint64_t(1) << 62) / e, "{}: tensor '{}': shape too large", what, name);
      numel *= e;
      a.shape.push_back(int64_t(e));
    }
    const uint64_t esz = dtype_size(a.dtype);
    TQ_CHECK_ARG(numel <= (uint64_t(1) << 62) / esz, "{}: tensor '{}': byte size overflows", what, name);
    const auto& off = v["data_offsets"];
    TQ_CHECK_ARG(off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                 "{}: tensor '{}': data_offsets must be non-negative integers", what, name);
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    TQ_CHECK_ARG(b <= e, "{}: tensor '{}': data_offsets begin {} > end {}", what, name, b, e);
    TQ_CHECK_ARG(e <= buf_size, "{}: tensor '{}': data ends at {} beyond the {}-byte buffer (truncated?)", what, name,
                 e, buf_size);
    TQ_CHECK_ARG(e - b == numel * esz, "{}: tensor '{}': {} bytes for {} x {} ({} elements of {} bytes expected)",
                 what, name, e - b, dt, v["shape"].dump(), numel, esz);
    a.data.assign(buf + b, buf + e);
    spans.push_back({b, e, name});
    st.tensors.emplace(name, std::move(a));
  }
  // The buffer must be covered exactly: no overlap, no hole, nothing after the last tensor.
  std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.b != y.b ? x.b < y.b : x.e < y.e; });
  uint64_t pos = 0;
  for (const auto& s : spans) {
    TQ_CHECK_ARG(s.b >= pos, "{}: tensor '{}' overlaps the previous tensor's bytes", what, s.name);
    TQ_CHECK_ARG(s.b == pos, "{}: bytes [{}, {}) of the buffer belong to no tensor", what, pos, s.b);
    pos = s.e;
  }
  TQ_CHECK_ARG(pos == buf_size, "{}: {} trailing bytes after the last tensor", what, buf_size - pos);
  return st;
}

SafeTensors safetensors_load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  TQ_CHECK(f.good(), kIoError, "cannot open '{}'", path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  TQ_CHECK(!f.bad(), kIoError, "read error on '{}'", path);
  return safetensors_parse(bytes.data(), bytes.size(), path);
}

void safetensors_save(const std::string& path, const std::map<std::string, NpyArray>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& [name, a] : tensors) {
    TQ_CHECK_ARG(!name.empty() && name != "__metadata__", "safetensors_save: invalid tensor name '{}'", name);
    const uint64_t nb = uint64_t(a.numel()) * dtype_size(a.dtype);
    TQ_CHECK_ARG(nb == a.data.size(), "safetensors_save: tensor '{}' has {} bytes for its shape, expected {}", name,
                 a.data.size(), nb);
    h[name] = {{"dtype", st_name(a.dtype)}, {"shape", a.shape}, {"data_offsets", {off, off + nb}}};
    off += nb;
  }
  std::string hs = h.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');
  std::ofstream f(path, std::ios::binary);
  TQ_CHECK(f.good(), kIoError, "cannot write '{}'", path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(hs.size()) >> (8 * i));
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(hs.data(), std::streamsize(hs.size()));
  for (const auto& [name, a] : tensors) f.write(reinterpret_cast<const char*>(a.data.data()), std::streamsize(a.data.size()));
  TQ_CHECK(f.good(), kIoError, "write to '{}' failed", path);
}

}  // namespace tq
