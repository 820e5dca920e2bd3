// turboquant/npy.h — minimal, strict .npy (format 1.0/2.0/3.0) reader and writer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tq {

enum class DType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2, kF64 = 3, kI64 = 4, kI32 = 5, kU8 = 6 };
const char* dtype_name(DType t);
size_t dtype_size(DType t);

struct NpyArray {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // C order, little-endian
  int64_t numel() const;
  // Returns the data as float32 (converting f16/bf16/f64); throws for integer dtypes.
  std::vector<float> to_f32() const;
};

// Throws tq::Error(kIoError) for a missing file and kInvalidArgument for a malformed one (bad
// magic, header, dtype, Fortran order, size mismatch). Never reads past the buffer.
NpyArray npy_load(const std::string& path);
NpyArray npy_parse(const uint8_t* bytes, size_t n);
void npy_save(const std::string& path, const NpyArray& a);
void npy_save_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

}  // namespace tq
