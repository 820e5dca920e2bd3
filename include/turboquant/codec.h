// turboquant/codec.h — codec specs, the codec-string parser and the Codec object (encode/decode).
//
// A CodecSpec names a configuration ("tq3", "tq2.5", "tq4p", "fp16", ...). Codec::create turns it
// into an immutable object for one dimension d: rotation(s), codebook(s), outlier channels. Codec
// objects are thread-safe (const) and cheap to share. The byte layout of what encode writes is
// defined in turboquant/layout.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "turboquant/layout.h"

namespace tq {

enum class RotationKind : uint8_t {
  kAuto = 0,      // randomized Hadamard (2 rounds) when the part dimension is a power of two, else dense
  kHadamard = 1,  // randomized Hadamard; the part dimension must be a power of two
  kDense = 2,     // dense Haar-random orthogonal (QR of a Gaussian matrix with sign fix)
  kNone = 3,      // identity (for experiments; TurboQuant's guarantees do not hold)
};

struct CodecSpec {
  CodecId id = CodecId::kFp32;
  int bits = 0;                 // TQ: bits per coordinate (prod: total, incl. the QJL bit). Baselines: 8/4/2.
  bool fractional = false;      // TQ "tqB.5": outlier part at bits+1, rest at bits
  double hi_fraction = 0.0;     // share of channels in the outlier part (tq2.5: 1/4, tqB.5 otherwise 1/2)
  NormType norm = NormType::kFp16;
  RotationKind rotation = RotationKind::kAuto;
  uint64_t seed = 0x5EED7A11u;  // rotation / sketch seed

  std::string name() const;     // canonical string, parse_codec(name()) round-trips
  bool is_passthrough() const { return id == CodecId::kFp32 || id == CodecId::kFp16 || id == CodecId::kBf16; }
  bool is_turboquant() const { return id == CodecId::kTqMse || id == CodecId::kTqProd; }
  // Nominal bits per value of the codes alone (norms/scales excluded), e.g. 2.25 for tq2.5 at d=128.
  double nominal_bits() const;
};

// Codec strings: fp32 | fp16 | bf16 | tqB (B=1..8) | tqB.5 (B=1..7) | tqBp (prod, B=2..8 total)
// | fp8 | q8 | q4 | q8r | q4r | kivi2, optionally followed by options ":norm=fp32", ":rot=dense",
// ":seed=N". Throws tq::Error(kInvalidArgument) naming the offending text.
CodecSpec parse_codec(std::string_view s);

// KV cache codec strings: "kXvY" (keys tqX, values tqY; X,Y may be fractional, e.g. k3.5v2.5) or
// "k=CODEC,v=CODEC", or a single codec for both.
struct KvCodecSpec {
  CodecSpec k, v;
  std::string name() const;
};
KvCodecSpec parse_kv_codec(std::string_view s);

class Rotation;
class Codebook;

class Codec {
 public:
  // calib (n_calib x d, row-major, optional) picks the outlier channels of fractional codecs: the
  // n_hi channels with the largest mean square. Without it, channels 0..n_hi-1.
  static std::shared_ptr<const Codec> create(const CodecSpec& spec, int d, const float* calib = nullptr,
                                             size_t n_calib = 0);
  virtual ~Codec() = default;

  const CodecSpec& spec() const { return spec_; }
  int dim() const { return d_; }
  size_t codes_bytes() const { return codes_bytes_; }    // codes section per vector
  size_t scalar_bytes() const { return scalar_bytes_; }  // scalars section per vector
  size_t code_size() const { return codes_bytes_ + scalar_bytes_; }  // bytes per encoded vector
  double bits_per_value() const { return 8.0 * double(code_size()) / double(d_); }

  // x: n vectors, row i at x + i*stride (stride >= d floats); codes: n * code_size() bytes.
  // Throws on NaN/Inf input or a norm that the norm type cannot hold; nothing is written then.
  virtual void encode(const float* x, size_t n, size_t stride, uint8_t* codes) const = 0;
  // codes: n * code_size() bytes; y: n vectors at stride (>= d floats).
  virtual void decode(const uint8_t* codes, size_t n, float* y, size_t stride) const = 0;

  // TurboQuant internals for fused kernels (nullptr / empty for other codecs).
  virtual const TqLayout* tq_layout() const { return nullptr; }

 protected:
  Codec(const CodecSpec& s, int d) : spec_(s), d_(d) {}
  CodecSpec spec_;
  int d_;
  size_t codes_bytes_ = 0, scalar_bytes_ = 0;
};

}  // namespace tq
