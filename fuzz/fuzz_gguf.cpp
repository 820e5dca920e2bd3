// Fuzz target: the GGUF reader must reject malformed input with tq::Error (truncation, hostile
// counts and lengths, bad offsets, overlaps, unknown types), never read past the buffer, and an
// accepted file's tensors lie inside it and dequantize without error when their type is readable.
#include <cstdint>
#include <cstdlib>

#include "turboquant/error.h"
#include "turboquant/model/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const tq::gguf::File f = tq::gguf::File::parse(data, size, "fuzz");
    for (const auto& t : f.tensors()) {
      if (t.data < data || t.data + t.nbytes > data + size) std::abort();
      if (tq::gguf::type_traits(uint32_t(t.type))->dequantizable && t.numel() <= (1 << 20)) f.tensor_f32(t.name);
    }
    for (const auto& [k, v] : f.metadata()) (void)v.to_string();
  } catch (const tq::Error&) {
  }
  return 0;
}
