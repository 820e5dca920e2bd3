// src/index/index_io.cpp — FlatIndex files.
//
// Little-endian, version 1:
//   magic "TQFLATIX" | u32 version | u32 d | u32 metric | u32 description length | description
//   | u64 n | i64 next_id | u32 parts | per part: u32 channel count, u32 channels...
//   | u32 code_size | n codec-encoded vectors (layout.h bytes: codes + norms, code_size each)
//   | n i64 labels | u8 has_vectors | (n * d f32 vectors) | u8 has_sqnorm | (n f32 ||x||^2)
//   | u64 FNV-1a of every byte before it
// (||x||^2 is kept for norm-corrected L2 indexes, whose stored scales are not the norms.)
// Vectors are stored as the codec's canonical bytes (not the scan blocks), so a file does not
// depend on the SIMD layout; load rebuilds the blocks. Loading checks the size and the checksum
// before interpreting anything, then every field; a file that fails any check is refused.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include "index/flat_index_impl.h"
#include "index/checksum.h"
#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/pack.h"

namespace tq {
namespace {

constexpr char kMagic[8] = {'T', 'Q', 'F', 'L', 'A', 'T', 'I', 'X'};
constexpr uint32_t kVersion = 1;

using tq::index_file::fnv1a;

struct Writer {
  std::vector<uint8_t> buf;
  template <typename T>
  void put(const T& v) {
    const auto* b = reinterpret_cast<const uint8_t*>(&v);
    buf.insert(buf.end(), b, b + sizeof(T));
  }
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    buf.insert(buf.end(), b, b + n);
  }
};

struct Reader {
  const uint8_t* p;
  size_t n, off = 0;
  std::string path;
  const uint8_t* take(size_t len, const char* what) {
    TQ_CHECK(len <= n - off, kIoError, "{}: truncated while reading {}", path, what);
    const uint8_t* r = p + off;
    off += len;
    return r;
  }
  template <typename T>
  T get(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
};

void store_norm(uint8_t* dst, NormType t, float v) {
  if (t == NormType::kFp32) {
    std::memcpy(dst, &v, 4);
  } else {
    const uint16_t h = float_to_half(v);  // v came from a half: exact
    std::memcpy(dst, &h, 2);
  }
}

}  // namespace

void FlatIndex::save(const std::string& path) const {
  const Impl& s = *p_;
  Writer w;
  w.bytes(kMagic, 8);
  w.put(kVersion);
  w.put(uint32_t(s.d));
  w.put(uint32_t(s.metric));
  const std::string desc = s.spec.name();
  w.put(uint32_t(desc.size()));
  w.bytes(desc.data(), desc.size());
  w.put(uint64_t(s.n));
  w.put(int64_t(s.next_id));
  const uint32_t np = uint32_t(s.n_parts());
  w.put(np);
  for (uint32_t p = 0; p < np; ++p) {
    const auto& ch = s.codec->parts()[p].channels;
    w.put(uint32_t(ch.size()));
    for (int c : ch) w.put(uint32_t(c));
  }
  const uint32_t cs = s.codec ? uint32_t(s.codec->code_size()) : 0;
  w.put(cs);
  if (s.n > 0) {
    const TqLayout& L = *s.codec->tq_layout();
    std::vector<uint8_t> codes(s.d), vec(cs);
    for (size_t i = 0; i < s.n; ++i) {
      std::memset(vec.data(), 0, cs);
      index::unpack_slot(s.geo, s.blocks.data(), i, codes.data());
      for (uint32_t p = 0; p < np; ++p) {
        pack_codes(&codes[L.part[p].first], L.part[p].dim, int(L.part[p].mse_bits), vec.data() + L.part[p].mse_offset);
        store_norm(vec.data() + L.codes_bytes + L.part[p].norm_offset, L.norm_type, s.norms[i * np + p]);
      }
      w.bytes(vec.data(), cs);
    }
  }
  w.bytes(s.ids.data(), s.n * sizeof(int64_t));
  const uint8_t has_vectors = s.spec.rerank > 0 && s.n > 0 ? 1 : 0;
  w.put(has_vectors);
  if (has_vectors) w.bytes(s.vectors.data(), s.n * size_t(s.d) * sizeof(float));
  const uint8_t has_sq = s.spec.nc && s.metric == Metric::kL2 && s.n > 0 ? 1 : 0;
  w.put(has_sq);
  if (has_sq) w.bytes(s.sqnorm.data(), s.n * sizeof(float));
  w.put(fnv1a(w.buf.data(), w.buf.size()));

  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    TQ_CHECK(f.good(), kIoError, "{}: cannot open for writing", tmp);
    f.write(reinterpret_cast<const char*>(w.buf.data()), std::streamsize(w.buf.size()));
    f.flush();
    TQ_CHECK(f.good(), kIoError, "{}: write failed", tmp);
  }
  TQ_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, kIoError, "{}: cannot rename to {}", tmp, path);
}

FlatIndex FlatIndex::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  TQ_CHECK(f.good(), kIoError, "{}: cannot open", path);
  const std::streamoff size = f.tellg();
  TQ_CHECK(size >= std::streamoff(8 + 4 + 8), kIoError, "{}: too short ({} bytes) for an index file", path, size);
  std::vector<uint8_t> buf(static_cast<size_t>(size));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(buf.data()), size);
  TQ_CHECK(f.good(), kIoError, "{}: read failed", path);
  return load_from_memory(buf.data(), buf.size(), path);
}

FlatIndex FlatIndex::load_from_memory(const uint8_t* data, size_t size, const std::string& path) {
  TQ_CHECK(data != nullptr || size == 0, kIoError, "{}: null data", path);
  TQ_CHECK(size >= 8 + 4 + 8, kIoError, "{}: too short ({} bytes) for an index file", path, size);
  TQ_CHECK(std::memcmp(data, kMagic, 8) == 0, kIoError, "{}: not a turboquant flat index (bad magic)", path);
  uint64_t stored;
  std::memcpy(&stored, data + size - 8, 8);
  Reader r{data, size - 8, 8, path};
  const uint32_t version = r.get<uint32_t>("version");
  TQ_CHECK(version == kVersion, kIoError, "{}: index file version {} is not supported (this build reads {})", path,
           version, kVersion);
  TQ_CHECK(fnv1a(data, size - 8) == stored, kIoError, "{}: checksum mismatch (corrupted or truncated)", path);

  auto s = std::make_unique<Impl>();
  const uint32_t d = r.get<uint32_t>("dimension");
  const uint32_t metric = r.get<uint32_t>("metric");
  TQ_CHECK(d >= 2 && d <= (1u << 16), kIoError, "{}: bad dimension {}", path, d);
  TQ_CHECK(metric <= 1, kIoError, "{}: bad metric {}", path, metric);
  const uint32_t dlen = r.get<uint32_t>("description length");
  TQ_CHECK(dlen <= 256, kIoError, "{}: bad description length {}", path, dlen);
  const uint8_t* dp = r.take(dlen, "description");
  const std::string desc(reinterpret_cast<const char*>(dp), dlen);
  s->d = int(d);
  s->metric = Metric(metric);
  try {
    s->spec = parse_index_spec(desc);
  } catch (const Error& e) {
    TQ_FAIL(kIoError, "{}: bad description: {}", path, e.what());
  }
  const uint64_t n = r.get<uint64_t>("count");
  const int64_t next_id = r.get<int64_t>("next id");
  const uint32_t np = r.get<uint32_t>("parts");
  TQ_CHECK(np <= kMaxParts, kIoError, "{}: bad part count {}", path, np);
  std::vector<std::vector<int>> channels(np);
  for (uint32_t p = 0; p < np; ++p) {
    const uint32_t m = r.get<uint32_t>("channel count");
    TQ_CHECK(m <= d, kIoError, "{}: bad channel count {}", path, m);
    for (uint32_t j = 0; j < m; ++j) {
      const uint32_t c = r.get<uint32_t>("channel");
      TQ_CHECK(c < d, kIoError, "{}: bad channel {}", path, c);
      channels[p].push_back(int(c));
    }
  }
  // Rebuild the codec. A fractional codec's outlier channels were picked from data: a calibration
  // row that is 1 on exactly those channels makes pick_outliers choose them again (checked below).
  std::shared_ptr<const TqCodec> codec;
  if (np > 0) {
    std::vector<float> calib;
    if (s->spec.codec.fractional) {
      calib.assign(d, 0.f);
      for (int c : channels[0]) calib[c] = 1.f;
    }
    try {
      codec = std::dynamic_pointer_cast<const TqCodec>(
          Codec::create(s->spec.codec, int(d), calib.empty() ? nullptr : calib.data(), calib.empty() ? 0 : 1));
    } catch (const Error& e) {
      TQ_FAIL(kIoError, "{}: cannot rebuild codec: {}", path, e.what());
    }
    TQ_CHECK(codec && codec->parts().size() == np, kIoError, "{}: codec parts do not match the file", path);
    for (uint32_t p = 0; p < np; ++p)
      TQ_CHECK(codec->parts()[p].channels == channels[p], kIoError, "{}: codec channels do not match the file", path);
    s->set_codec(codec);
  } else {
    TQ_CHECK(s->spec.codec.fractional && n == 0, kIoError, "{}: codec missing", path);
  }
  const uint32_t cs = r.get<uint32_t>("code size");
  TQ_CHECK(np == 0 || cs == codec->code_size(), kIoError, "{}: code size {} does not match the codec ({})", path, cs,
           np ? codec->code_size() : 0);
  TQ_CHECK(n <= (r.n - r.off) / std::max<uint64_t>(1, uint64_t(cs) + 8), kIoError, "{}: count {} exceeds the file",
           path, n);
  const uint8_t* vecs = r.take(size_t(n) * cs, "codes");
  const uint8_t* idp = r.take(size_t(n) * 8, "labels");
  const uint8_t has_vectors = r.get<uint8_t>("vector flag");
  TQ_CHECK(has_vectors == (s->spec.rerank > 0 && n > 0 ? 1 : 0), kIoError,
           "{}: vector flag {} does not match the description", path, has_vectors);
  const uint8_t* xp = has_vectors ? r.take(size_t(n) * d * 4, "vectors") : nullptr;
  const uint8_t has_sq = r.get<uint8_t>("squared norm flag");
  TQ_CHECK(has_sq == (s->spec.nc && s->metric == Metric::kL2 && n > 0 ? 1 : 0), kIoError,
           "{}: squared norm flag {} does not match the description", path, has_sq);
  std::vector<float> sq(has_sq ? size_t(n) : 0);
  if (has_sq) std::memcpy(sq.data(), r.take(size_t(n) * 4, "squared norms"), size_t(n) * 4);
  for (float v : sq) TQ_CHECK(std::isfinite(v) && v >= 0, kIoError, "{}: bad squared norm", path);
  TQ_CHECK(r.off == r.n, kIoError, "{}: {} unexpected bytes before the checksum", path, r.n - r.off);

  // Unpack the canonical codes and append them like an add would.
  std::vector<uint8_t> codes(size_t(n) * d);
  std::vector<float> norms(size_t(n) * np), x;
  std::vector<int64_t> ids(n);
  if (n > 0) std::memcpy(ids.data(), idp, size_t(n) * 8);  // (memcpy to an empty vector's null data is UB)
  // The label rules of FlatIndex::add (INT64_MAX is reserved; next_id starts at 0 and only grows).
  constexpr int64_t kNoLabel = std::numeric_limits<int64_t>::max();
  TQ_CHECK(next_id >= 0 && next_id < kNoLabel, kIoError, "{}: bad next id {}", path, next_id);
  for (size_t i = 0; i < size_t(n); ++i) TQ_CHECK(ids[i] != kNoLabel, kIoError, "{}: vector {} has a reserved label", path, i);
  if (xp) {
    x.resize(size_t(n) * d);
    std::memcpy(x.data(), xp, x.size() * 4);
  }
  if (n > 0) {
    const TqLayout& L = *codec->tq_layout();
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* v = vecs + i * cs;
      for (uint32_t p = 0; p < np; ++p) {
        unpack_codes(v + L.part[p].mse_offset, L.part[p].dim, int(L.part[p].mse_bits), &codes[i * d + L.part[p].first]);
        const float nr = codec->norm(v + L.codes_bytes, int(p));
        TQ_CHECK(std::isfinite(nr) && nr >= 0, kIoError, "{}: vector {} has a bad norm", path, i);
        norms[i * np + p] = nr;
      }
    }
    s->append(codes.data(), norms.data(), x.data(), ids.data(), size_t(n), 0, has_sq ? sq.data() : nullptr);
  }
  s->next_id = std::max(s->next_id, next_id);
  return FlatIndex(std::move(s));
}

}  // namespace tq
