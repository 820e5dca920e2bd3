// tests/model/gguf_writer.h — builds GGUF files byte by byte for the tests (written from the format
// description in turboquant/model/gguf.h, independently of the reader).
#pragma once
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace tqtest {

class GgufWriter {
 public:
  uint32_t alignment = 32;
  uint32_t version = 3;

  // ---- metadata ----
  void kv_u32(const std::string& k, uint32_t v) { key(k, 4); put(v); ++n_kv_; }
  void kv_i32(const std::string& k, int32_t v) { key(k, 5); put(v); ++n_kv_; }
  void kv_f32(const std::string& k, float v) { key(k, 6); put(v); ++n_kv_; }
  void kv_bool(const std::string& k, bool v) { key(k, 7); put(uint8_t(v)); ++n_kv_; }
  void kv_str(const std::string& k, const std::string& v) { key(k, 8); str(meta_, v); ++n_kv_; }
  void kv_u64(const std::string& k, uint64_t v) { key(k, 10); put(v); ++n_kv_; }
  void kv_i64(const std::string& k, int64_t v) { key(k, 11); put(v); ++n_kv_; }
  void kv_f64(const std::string& k, double v) { key(k, 12); put(v); ++n_kv_; }
  void kv_u8(const std::string& k, uint8_t v) { key(k, 0); put(v); ++n_kv_; }
  void kv_i8(const std::string& k, int8_t v) { key(k, 1); put(v); ++n_kv_; }
  void kv_u16(const std::string& k, uint16_t v) { key(k, 2); put(v); ++n_kv_; }
  void kv_i16(const std::string& k, int16_t v) { key(k, 3); put(v); ++n_kv_; }
  void kv_strs(const std::string& k, const std::vector<std::string>& v) {
    key(k, 9);
    put(uint32_t(8));
    put(uint64_t(v.size()));
    for (const auto& s : v) str(meta_, s);
    ++n_kv_;
  }
  template <class T>
  void kv_arr(const std::string& k, uint32_t elem_type, const std::vector<T>& v) {
    key(k, 9);
    put(elem_type);
    put(uint64_t(v.size()));
    for (const T& x : v) put(x);
    ++n_kv_;
  }
  // Raw bytes appended to the metadata section (for crafted malformed entries); counts as one kv.
  void kv_raw(const std::vector<uint8_t>& bytes) { meta_.insert(meta_.end(), bytes.begin(), bytes.end()); ++n_kv_; }

  // ---- tensors: ne in ggml order, data = exact bytes ----
  void tensor(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type, const std::vector<uint8_t>& data) {
    str(infos_, name);
    put_to(infos_, uint32_t(ne.size()));
    for (uint64_t x : ne) put_to(infos_, x);
    put_to(infos_, type);
    while (data_.size() % alignment) data_.push_back(0);
    put_to(infos_, uint64_t(data_.size()));
    data_.insert(data_.end(), data.begin(), data.end());
    ++n_tensors_;
  }
  void tensor_f32(const std::string& name, const std::vector<uint64_t>& ne, const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    tensor(name, ne, 0, b);
  }

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
    put_to(out, version);
    put_to(out, n_tensors_);
    put_to(out, n_kv_);
    out.insert(out.end(), meta_.begin(), meta_.end());
    out.insert(out.end(), infos_.begin(), infos_.end());
    if (n_tensors_) {
      while (out.size() % alignment) out.push_back(0);
      out.insert(out.end(), data_.begin(), data_.end());
    }
    return out;
  }
  void save(const std::string& path) const {
    const auto b = bytes();
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  }

  template <class T>
  static void put_to(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  static void str(std::vector<uint8_t>& out, const std::string& s) {
    put_to(out, uint64_t(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }

 private:
  template <class T>
  void put(T v) { put_to(meta_, v); }
  void key(const std::string& k, uint32_t type) { str(meta_, k); put(type); }
  std::vector<uint8_t> meta_, infos_, data_;
  uint64_t n_kv_ = 0, n_tensors_ = 0;
};

// The SPM byte-fallback vocabulary of the tests' tiny models: <unk> <s> </s>, the 256 byte tokens
// <0x00>..<0xFF>, then four pieces.
inline std::vector<std::string> byte_fallback_vocab() {
  std::vector<std::string> v = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.push_back(buf);
  }
  for (const char* s : {"▁", "a", "▁a", "b"}) v.push_back(s);
  return v;
}

}  // namespace tqtest
