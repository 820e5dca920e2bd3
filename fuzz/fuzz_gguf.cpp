// Fuzz target: the GGUF reader must reject malformed input with tq::Error (truncation, hostile
// counts and lengths, bad offsets, overlaps, unknown types), never read past the buffer, and an
// accepted file's tensors lie inside it and dequantize without error when their type is readable.
// Files that parse go on to the tokenizer and the llama loader, which must fail just as cleanly;
// a model that loads runs a two-token forward pass.
#include <cstdint>
#include <cstdlib>

#include "turboquant/error.h"
#include "turboquant/model/gguf.h"
#include "turboquant/model/llama.h"
#include "turboquant/model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const tq::gguf::File f = tq::gguf::File::parse(data, size, "fuzz");
    int64_t total = 0;
    for (const auto& t : f.tensors()) {
      if (t.data < data || t.data + t.nbytes > data + size) std::abort();
      total += t.numel();
      if (tq::gguf::type_traits(uint32_t(t.type))->dequantizable && t.numel() <= (1 << 20)) f.tensor_f32(t.name);
    }
    for (const auto& [k, v] : f.metadata()) (void)v.to_string();
    try {
      const auto tok = tq::model::Tokenizer::from_gguf(f);
      const auto ids = tok.encode("Once upon a time, w\xc3\xb6rld \xff!");
      (void)tok.decode(ids);
    } catch (const tq::Error&) {
    }
    if (total <= (1 << 22)) {  // weights become floats: keep the fuzzer's memory small
      const tq::model::LlamaModel m(f);
      auto kv = tq::model::make_kv_store(m.kv_shape(), "fp32");
      std::vector<float> logits(size_t(m.config().n_vocab));
      const int32_t toks[2] = {0, m.config().n_vocab - 1};
      m.forward(toks, 2, *kv, logits.data(), false);
    }
  } catch (const tq::Error&) {
  }
  return 0;
}
