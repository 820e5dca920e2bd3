// turboquant/model/tokenizer.h — SentencePiece-style ("SPM", tokenizer.ggml.model = "llama")
// tokenizer built from a GGUF vocabulary, following llama.cpp's llm_tokenizer_spm:
//   1. normalize: prepend one space (tokenizer.ggml.add_space_prefix, default true), then every
//      ' ' becomes "▁" (U+2581);
//   2. split into UTF-8 characters (a byte that does not start a valid sequence is its own symbol);
//   3. repeatedly merge the adjacent pair whose concatenation is a vocabulary token with the
//      highest score (ties: leftmost first);
//   4. emit each symbol's token; a symbol that is not a token (only single characters can be)
//      becomes its UTF-8 bytes as <0xXX> byte tokens, or the unknown token without them.
// Decoding maps "▁" back to ' ', byte tokens to their byte (so multi-byte characters reassemble),
// control tokens (BOS/EOS) to nothing, and removes the space that normalization added.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tq::gguf { class File; }

namespace tq::model {

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

class Tokenizer {
 public:
  // Reads tokenizer.ggml.{model, tokens, scores, token_type, bos_token_id, eos_token_id,
  // unknown_token_id, add_space_prefix}. kUnsupported for a model other than "llama";
  // kInvalidArgument for arrays of the wrong type or length, ids out of range.
  static Tokenizer from_gguf(const gguf::File& f);
  // scores / types may be empty (all 0 / byte tokens recognised by their "<0xXX>" spelling).
  // bos / eos / unk: -1 when absent.
  Tokenizer(std::vector<std::string> tokens, std::vector<float> scores, std::vector<int32_t> types, int32_t bos,
            int32_t eos, int32_t unk, bool add_space_prefix = true);

  // Text (UTF-8, any bytes) -> token ids, without BOS.
  std::vector<int32_t> encode(std::string_view text) const;
  // The bytes one token stands for (see the header comment); kOutOfRange for a bad id.
  std::string piece(int32_t id) const;
  // ids -> text: the pieces concatenated, minus the space added by normalization.
  std::string decode(const std::vector<int32_t>& ids) const;

  int32_t vocab_size() const { return int32_t(tokens_.size()); }
  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  const std::string& token(int32_t id) const;
  TokenType type(int32_t id) const { return types_.at(size_t(id)); }
  int32_t find(std::string_view text) const;  // id of a token's text, -1 when absent
  bool add_space_prefix() const { return add_space_prefix_; }

 private:
  void emit(std::string_view sym, std::vector<int32_t>& out) const;

  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::unordered_map<std::string, int32_t> ids_;
  int32_t byte_ids_[256];
  int32_t bos_ = -1, eos_ = -1, unk_ = -1;
  bool add_space_prefix_ = true;
};

}  // namespace tq::model
