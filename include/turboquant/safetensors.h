// turboquant/safetensors.h — strict .safetensors reader and a writer.
//
// File layout (https://huggingface.co/docs/safetensors, format as of safetensors 0.4):
//   bytes [0, 8)        N, unsigned 64-bit little-endian: size of the header
//   bytes [8, 8+N)      header: a UTF-8 JSON object, possibly padded at the end with spaces (0x20)
//                         { "__metadata__": {"key": "string value", ...},        (optional)
//                           "<tensor name>": {"dtype": "F32", "shape": [2, 3],
//                                             "data_offsets": [begin, end]}, ... }
//   bytes [8+N, EOF)    the data buffer; tensor bytes at [begin, end) relative to its start,
//                       C order, little-endian
// What the reader rejects (tq::Error kInvalidArgument, naming the file and the problem), so that
// a truncated or hostile file never makes it read out of bounds or guess:
//   - a file shorter than 8 bytes, N larger than the rest of the file or than 100 MB
//   - a header that is not a JSON object, duplicate keys, a tensor entry with a missing or
//     unknown field, a non-string metadata value, an empty tensor name
//   - a dtype other than F64, F32, F16, BF16, I64, I32, U8 (the dtypes of npy.h)
//   - negative or non-integer shape entries, an element count whose byte size overflows
//   - data_offsets with begin > end, end - begin != element count * dtype size, end beyond the
//     buffer, overlapping tensors, or bytes of the buffer that no tensor covers (the format
//     requires the buffer to be fully indexed)
// Tensors are returned as NpyArray (dtype, shape, bytes) so that the rest of the code reads one
// array type whatever the container.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "turboquant/npy.h"

namespace tq {

struct SafeTensors {
  std::map<std::string, NpyArray> tensors;
  std::map<std::string, std::string> metadata;
  // The tensor called `name`; throws tq::Error(kInvalidArgument) listing the names present.
  const NpyArray& at(const std::string& name) const;
};

// kIoError for a missing/unreadable file; kInvalidArgument for a malformed one. `what` names the
// source in messages (a path for safetensors_load).
SafeTensors safetensors_load(const std::string& path);
SafeTensors safetensors_parse(const uint8_t* bytes, size_t n, const std::string& what = "safetensors");
// Writes tensors in name order, header padded with spaces to a multiple of 8 bytes.
void safetensors_save(const std::string& path, const std::map<std::string, NpyArray>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// True when the path ends in ".safetensors" (the CLI picks the reader by extension).
bool is_safetensors_path(const std::string& path);

}  // namespace tq
