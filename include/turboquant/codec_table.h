// turboquant/codec_table.h — the codec table: one row per CodecId. Codec::create, the parser, the
// CLI, tests and benchmarks all go through it; adding a codec = one row + its Codec subclass.
#pragma once
#include <memory>

#include "turboquant/codec.h"

namespace tq {

using CodecFactory = std::shared_ptr<const Codec> (*)(const CodecSpec&, int d, const float* calib, size_t n_calib);

struct CodecInfo {
  CodecId id;
  const char* name;        // base name in codec strings ("tq" for the TurboQuant family)
  const char* summary;     // one line for --help and the demo
  CodecFactory make;       // nullptr: not available in this build
};

// Row for an id; throws tq::Error(kUnsupported) when the id has no codec in this build.
const CodecInfo& codec_info(CodecId id);
// All rows present in this build, in id order.
const CodecInfo* codec_rows(size_t* n);

}  // namespace tq
