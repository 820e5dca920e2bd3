// Fuzz target: codec strings. Parsing must either throw tq::Error or give a spec whose canonical
// name parses back to itself; small codecs built from it must round-trip a vector.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "turboquant/codec.h"
#include "turboquant/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256) return 0;
  const std::string s(reinterpret_cast<const char*>(data), size);
  try {
    const tq::KvCodecSpec kv = tq::parse_kv_codec(s);
    if (tq::parse_kv_codec(kv.name()).name() != kv.name()) std::abort();
    const tq::CodecSpec spec = tq::parse_codec(kv.k.name());
    if (spec.name() != kv.k.name()) std::abort();
    const int d = 2 + int(size % 31);  // small: dense rotations are O(d^3) to build
    auto codec = tq::Codec::create(spec, d);
    std::vector<float> x(d), y(d);
    for (int i = 0; i < d; ++i) x[i] = float(i % 7) - 3.0f;
    std::vector<uint8_t> code(codec->code_size());
    codec->encode(x.data(), 1, d, code.data());
    codec->decode(code.data(), 1, y.data(), d);
  } catch (const tq::Error&) {
  }
  return 0;
}
