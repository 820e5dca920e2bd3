// Fuzz target: the .npy parser must reject any malformed input with tq::Error, never read out of
// bounds, and on success describe exactly the bytes it was given.
#include <cstdint>
#include <cstdlib>

#include "turboquant/error.h"
#include "turboquant/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const tq::NpyArray a = tq::npy_parse(data, size);
    if (a.data.size() != size_t(a.numel()) * tq::dtype_size(a.dtype)) std::abort();
    if (a.dtype == tq::DType::kF32 || a.dtype == tq::DType::kF16 || a.dtype == tq::DType::kF64) (void)a.to_f32();
  } catch (const tq::Error&) {
  }
  return 0;
}
