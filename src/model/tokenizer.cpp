// src/model/tokenizer.cpp — SPM tokenizer (algorithm: turboquant/model/tokenizer.h).
#include "turboquant/model/tokenizer.h"

#include <algorithm>
#include <queue>

#include "turboquant/error.h"
#include "turboquant/model/gguf.h"

namespace tq::model {
namespace {

const std::string kSpace = "\xe2\x96\x81";  // U+2581 "▁"

// Byte value of a "<0xXX>" token, -1 if the text has another form.
int parse_byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int h = hex(t[3]), l = hex(t[4]);
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

// Length of the UTF-8 character at s[0, n): the length its lead byte announces (llama.cpp's
// unicode_len_utf8), cut at the first byte that is not a continuation byte. llama.cpp takes the
// announced length blindly, so an invalid byte can swallow a following "▁" and the text no longer
// round-trips; on valid UTF-8 both agree.
size_t utf8_len(const char* s, size_t n) {
  static const size_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  const size_t want = std::min(n, lut[uint8_t(s[0]) >> 4]);
  size_t len = 1;
  while (len < want && (uint8_t(s[len]) & 0xC0) == 0x80) ++len;
  return len;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, from.size(), from) == 0) {
      out += to;
      i += from.size();
    } else {
      out += s[i++];
    }
  }
  return out;
}

}  // namespace

Tokenizer::Tokenizer(std::vector<std::string> tokens, std::vector<float> scores, std::vector<int32_t> types,
                     int32_t bos, int32_t eos, int32_t unk, bool add_space_prefix)
    : tokens_(std::move(tokens)), scores_(std::move(scores)), bos_(bos), eos_(eos), unk_(unk),
      add_space_prefix_(add_space_prefix) {
  const size_t n = tokens_.size();
  TQ_CHECK_ARG(n > 0 && n <= size_t(INT32_MAX), "tokenizer: {} tokens", n);
  if (scores_.empty()) scores_.assign(n, 0.0f);
  TQ_CHECK_ARG(scores_.size() == n, "tokenizer: {} scores for {} tokens", scores_.size(), n);
  TQ_CHECK_ARG(types.empty() || types.size() == n, "tokenizer: {} token types for {} tokens", types.size(), n);
  for (int32_t id : {bos, eos, unk})
    TQ_CHECK_ARG(id >= -1 && id < int32_t(n), "tokenizer: special token id {} outside the vocabulary of {}", id, n);
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  types_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    TokenType t = TokenType::kNormal;
    if (!types.empty()) {
      TQ_CHECK_ARG(types[i] >= 1 && types[i] <= 6, "tokenizer: token {} has type {} (1..6 allowed)", i, types[i]);
      t = TokenType(types[i]);
    } else if (parse_byte_token(tokens_[i]) >= 0) {
      t = TokenType::kByte;
    } else if (int32_t(i) == bos || int32_t(i) == eos) {
      t = TokenType::kControl;
    } else if (int32_t(i) == unk) {
      t = TokenType::kUnknown;
    }
    types_[i] = t;
    if (t == TokenType::kByte) {
      const int b = parse_byte_token(tokens_[i]);
      TQ_CHECK_ARG(b >= 0, "tokenizer: byte token {} is spelled '{}', not <0xXX>", i, tokens_[i]);
      if (byte_ids_[b] < 0) byte_ids_[b] = int32_t(i);
    }
    ids_[tokens_[i]] = int32_t(i);  // a repeated text maps to its last id, as in llama.cpp
  }
}

Tokenizer Tokenizer::from_gguf(const gguf::File& f) {
  const std::string model = f.get_string("tokenizer.ggml.model", "llama");
  TQ_CHECK(model == "llama", kUnsupported, "{}: tokenizer model '{}'; only SentencePiece ('llama') is supported",
           f.source(), model);
  const gguf::Value& tv = f.at("tokenizer.ggml.tokens");
  TQ_CHECK_ARG(tv.type == gguf::ValueType::kArray && tv.elem == gguf::ValueType::kString,
               "{}: tokenizer.ggml.tokens must be an array of strings", f.source());
  const size_t n = tv.strs.size();
  std::vector<float> scores;
  if (const gguf::Value* s = f.find("tokenizer.ggml.scores")) {
    TQ_CHECK_ARG(s->type == gguf::ValueType::kArray && s->count == n, "{}: tokenizer.ggml.scores must be {} numbers",
                 f.source(), n);
    scores.resize(n);
    for (size_t i = 0; i < n; ++i) scores[i] = float(s->num_at(i));
  }
  std::vector<int32_t> types;
  if (const gguf::Value* t = f.find("tokenizer.ggml.token_type")) {
    TQ_CHECK_ARG(t->type == gguf::ValueType::kArray && t->count == n,
                 "{}: tokenizer.ggml.token_type must be {} integers", f.source(), n);
    types.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const int64_t x = t->int_at(i);
      TQ_CHECK_ARG(x >= 1 && x <= 6, "{}: token {} has type {} (1..6 allowed)", f.source(), i, x);
      types[i] = int32_t(x);
    }
  }
  // Absent ids and the 0xFFFFFFFF "none" value that writers use both mean: no such token.
  auto id = [&](const char* key, int64_t dflt) -> int32_t {
    const int64_t v = f.get_int(key, dflt);
    if (v < 0 || v == 0xFFFFFFFFll) return -1;
    TQ_CHECK_ARG(v < int64_t(n), "{}: {} = {} outside the vocabulary of {}", f.source(), key, v, n);
    return int32_t(v);
  };
  bool space = true;
  if (const gguf::Value* v = f.find("tokenizer.ggml.add_space_prefix")) space = v->as_bool();
  return Tokenizer(tv.strs, std::move(scores), std::move(types), id("tokenizer.ggml.bos_token_id", 1),
                   id("tokenizer.ggml.eos_token_id", 2), id("tokenizer.ggml.unknown_token_id", 0), space);
}

const std::string& Tokenizer::token(int32_t id) const {
  TQ_CHECK(id >= 0 && id < vocab_size(), kOutOfRange, "tokenizer: token id {} outside [0, {})", id, vocab_size());
  return tokens_[size_t(id)];
}

int32_t Tokenizer::find(std::string_view text) const {
  auto it = ids_.find(std::string(text));
  return it == ids_.end() ? -1 : it->second;
}

// A final symbol: its token, else its bytes as byte tokens (else the unknown token).
void Tokenizer::emit(std::string_view sym, std::vector<int32_t>& out) const {
  const int32_t id = find(sym);
  if (id >= 0) {
    out.push_back(id);
    return;
  }
  for (unsigned char c : sym) {
    const int32_t b = byte_ids_[c] >= 0 ? byte_ids_[c] : unk_;
    TQ_CHECK_ARG(b >= 0, "tokenizer: byte 0x{:02X} has no token and the vocabulary has no unknown token", c);
    out.push_back(b);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  if (text.empty()) return out;
  const std::string norm = replace_all(add_space_prefix_ ? " " + std::string(text) : std::string(text), " ", kSpace);

  // Symbols are adjacent spans of `norm` in a doubly linked list; a merged-away symbol has n = 0.
  struct Sym { size_t start, n; int prev, next; };
  std::vector<Sym> sym;
  for (size_t off = 0; off < norm.size();) {
    const size_t len = utf8_len(norm.data() + off, norm.size() - off);
    sym.push_back({off, len, int(sym.size()) - 1, int(sym.size()) + 1});
    off += len;
  }
  sym.back().next = -1;

  struct Bigram { int left, right; float score; size_t size; };
  // Highest score first; equal scores: leftmost first.
  auto worse = [](const Bigram& a, const Bigram& b) { return a.score < b.score || (a.score == b.score && a.left > b.left); };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const std::string_view pair(norm.data() + sym[l].start, sym[l].n + sym[r].n);
    const int32_t id = find(pair);
    if (id >= 0) queue.push({l, r, scores_[size_t(id)], pair.size()});
  };
  for (int i = 0; i + 1 < int(sym.size()); ++i) try_add(i, i + 1);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Sym& l = sym[b.left];
    Sym& r = sym[b.right];
    // Stale entry: one side was merged into something else since it was queued.
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  // Every merged symbol is a token (merges need one); only unmerged characters can need bytes.
  for (int i = 0; i >= 0; i = sym[i].next) emit(std::string_view(norm.data() + sym[i].start, sym[i].n), out);
  return out;
}

std::string Tokenizer::piece(int32_t id) const {
  const std::string& t = token(id);
  switch (types_[size_t(id)]) {
    case TokenType::kByte: return std::string(1, char(parse_byte_token(t)));
    case TokenType::kControl: return "";
    case TokenType::kUnknown: return "\xe2\x96\x85";  // "▅", as llama.cpp prints it
    case TokenType::kUserDefined: return t;
    default: return replace_all(t, kSpace, " ");
  }
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (int32_t id : ids) s += piece(id);
  if (add_space_prefix_ && !s.empty() && s[0] == ' ') s.erase(0, 1);
  return s;
}

}  // namespace tq::model
