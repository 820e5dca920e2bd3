// Fuzz target: the .safetensors reader must reject malformed input with tq::Error (bad header
// length, JSON, dtypes, offsets, overlaps, truncation) and never read past the buffer; an accepted
// file's tensors hold exactly the bytes their shapes describe.
#include <cstdint>
#include <cstdlib>

#include "turboquant/error.h"
#include "turboquant/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const tq::SafeTensors st = tq::safetensors_parse(data, size, "fuzz");
    for (const auto& [name, a] : st.tensors)
      if (a.data.size() != size_t(a.numel()) * tq::dtype_size(a.dtype)) std::abort();
  } catch (const tq::Error&) {
  }
  return 0;
}
