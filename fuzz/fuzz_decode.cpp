// Fuzz target: arbitrary bytes decoded as encoded vectors. Whatever the bytes (garbage norms, NaN
// scales), decode must read exactly n * code_size() bytes and write exactly n * d floats.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "turboquant/codec.h"
#include "turboquant/error.h"

namespace {
const char* kCodecs[] = {"tq1", "tq2", "tq3", "tq4", "tq8", "tq2.5", "tq3.5", "tq3p", "tq2:norm=fp32", "fp16", "bf16", "fp32",
                         "q8", "q4", "q8r", "q4r", "fp8", "kivi2"};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const char* name = kCodecs[data[0] % (sizeof(kCodecs) / sizeof(kCodecs[0]))];
  const int dims[] = {8, 13, 32, 64, 100, 128};
  const int d = dims[data[1] % 6];
  data += 2;
  size -= 2;
  try {
    auto codec = tq::Codec::create(tq::parse_codec(name), d);
    const size_t n = size / codec->code_size();
    if (n == 0 || n > 64) return 0;
    // Exact-size heap copies so that ASan catches any read or write past the end.
    std::unique_ptr<uint8_t[]> in(new uint8_t[n * codec->code_size()]);
    std::memcpy(in.get(), data, n * codec->code_size());
    std::unique_ptr<float[]> out(new float[n * d]);
    codec->decode(in.get(), n, out.get(), d);
  } catch (const tq::Error&) {
  }
  return 0;
}
