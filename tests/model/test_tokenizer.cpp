// SPM tokenizer: merge order worked out by hand on small vocabularies, byte fallback, exact
// round trips (any bytes), vocabulary validation, and the stories260K vocabulary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "gguf_writer.h"
#include "turboquant/error.h"
#include "turboquant/model/gguf.h"
#include "turboquant/model/tokenizer.h"

namespace {

using tq::model::Tokenizer;

// <unk>, <s>, </s>, 256 byte tokens, then `extra` (text, score) — ids from 259 on.
Tokenizer make(const std::vector<std::pair<std::string, float>>& extra, bool with_bytes = true, bool space = true,
               int32_t unk = 0) {
  std::vector<std::string> toks = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  if (with_bytes)
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      toks.push_back(buf);
      scores.push_back(0);
      types.push_back(6);
    }
  for (const auto& [t, s] : extra) {
    toks.push_back(t);
    scores.push_back(s);
    types.push_back(1);
  }
  return Tokenizer(toks, scores, types, 1, 2, unk, space);
}

std::vector<std::string> texts(const Tokenizer& tk, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(tk.token(id));
  return out;
}

using V = std::vector<std::string>;

TEST(Tokenizer, MergesHighestScoreFirst) {
  // "▁abc": pairs ▁a (-5), ab (-1), bc (-2). ab merges first, then abc (-0.5) becomes possible;
  // ▁a is stale by then.
  const auto tk = make({{"▁", -9}, {"a", -9}, {"b", -9}, {"c", -9}, {"▁a", -5}, {"ab", -1}, {"bc", -2}, {"abc", -0.5}});
  EXPECT_EQ(texts(tk, tk.encode("abc")), (V{"▁", "abc"}));
  // bc outranks ab: b joins c, and "a"+"bc" is no token, so ▁a merges next.
  const auto tk2 = make({{"▁", -9}, {"a", -9}, {"b", -9}, {"c", -9}, {"▁a", -5}, {"ab", -3}, {"bc", -2}});
  EXPECT_EQ(texts(tk2, tk2.encode("abc")), (V{"▁a", "bc"}));
}

TEST(Tokenizer, EqualScoresMergeLeftmostFirst) {
  const auto tk = make({{"▁", -9}, {"a", -9}, {"aa", -1}});
  EXPECT_EQ(texts(tk, tk.encode("aaa")), (V{"▁", "aa", "a"}));
  EXPECT_EQ(texts(tk, tk.encode("aaaa")), (V{"▁", "aa", "aa"}));
}

TEST(Tokenizer, SpacesBecomeMetaSpaceWithPrefix) {
  const auto tk = make({{"▁", -9}, {"a", -9}, {"b", -9}, {"▁a", -1}, {"▁b", -1}});
  EXPECT_EQ(texts(tk, tk.encode("a b")), (V{"▁a", "▁b"}));
  EXPECT_EQ(texts(tk, tk.encode(" a")), (V{"▁", "▁a"}));
  EXPECT_EQ(tk.decode(tk.encode("a b")), "a b");
  EXPECT_EQ(tk.decode(tk.encode(" a")), " a");
  EXPECT_TRUE(tk.encode("").empty());
  const auto nospace = make({{"a", -9}, {"b", -9}, {"ab", -1}}, true, false);
  EXPECT_EQ(texts(nospace, nospace.encode("ab")), (V{"ab"}));
  EXPECT_EQ(nospace.decode(nospace.encode("ab")), "ab");
}

TEST(Tokenizer, FallsBackToBytes) {
  const auto tk = make({{"▁", -9}, {"a", -9}});
  // é is not in the vocabulary: its two UTF-8 bytes
  EXPECT_EQ(texts(tk, tk.encode("aé")), (V{"▁", "a", "<0xC3>", "<0xA9>"}));
  EXPECT_EQ(tk.decode(tk.encode("aé")), "aé");
  // invalid UTF-8 and a sequence cut short still round-trip byte for byte
  for (const std::string& s : std::vector<std::string>{"\xff\xfe", "a\xe2\x96", "\x80", std::string("a\0b", 3)})
    EXPECT_EQ(tk.decode(tk.encode(s)), s);
  // without byte tokens: the unknown token; without that either: an error
  const auto nobytes = make({{"▁", -9}, {"a", -9}}, false);
  EXPECT_EQ(nobytes.encode("aé"), (std::vector<int32_t>{3, 4, 0, 0}));
  const auto nounk = make({{"▁", -9}, {"a", -9}}, false, true, -1);
  EXPECT_THROW(nounk.encode("aé"), tq::Error);
}

TEST(Tokenizer, DecodesPieces) {
  const auto tk = make({{"▁", -9}, {"a", -9}, {"▁a", -1}});
  EXPECT_EQ(tk.piece(1), "");             // control
  EXPECT_EQ(tk.piece(3 + 0x41), "A");     // byte token <0x41>
  EXPECT_EQ(tk.piece(tk.find("▁a")), " a");
  EXPECT_EQ(tk.piece(0), "\xe2\x96\x85");  // unknown
  EXPECT_EQ(tk.decode({1, tk.find("▁a"), tk.find("▁a"), 2}), "a a");
  EXPECT_THROW(tk.piece(-1), tq::Error);
  EXPECT_THROW(tk.piece(tk.vocab_size()), tq::Error);
}

TEST(Tokenizer, RandomTextRoundTrips) {
  const auto tk = make({{"▁", -9}, {"a", -9}, {"b", -8}, {"ab", -1}, {"ba", -2}, {"▁a", -3}, {"aba", -0.5},
                        {"é", -4}, {"▁▁", -1}});
  std::mt19937 rng(3);
  // (a literal "▁" in the input would decode as a space, in SentencePiece as here: left out)
  const std::vector<std::string> alphabet = {"a", "b", " ", "é", "\n", "z", "\xff"};
  for (int it = 0; it < 500; ++it) {
    std::string s;
    const int n = int(rng() % 40);
    for (int k = 0; k < n; ++k) s += alphabet[rng() % alphabet.size()];
    EXPECT_EQ(tk.decode(tk.encode(s)), s) << s;
  }
}

TEST(Tokenizer, RejectsBadVocabularies) {
  EXPECT_THROW(Tokenizer({}, {}, {}, -1, -1, -1), tq::Error);
  EXPECT_THROW(Tokenizer({"a", "b"}, {0}, {}, -1, -1, -1), tq::Error);          // scores length
  EXPECT_THROW(Tokenizer({"a", "b"}, {}, {1, 7}, -1, -1, -1), tq::Error);       // type 7
  EXPECT_THROW(Tokenizer({"a", "b"}, {}, {1, 6}, -1, -1, -1), tq::Error);       // byte token "b"
  EXPECT_THROW(Tokenizer({"a", "b"}, {}, {}, 2, -1, -1), tq::Error);            // bos out of range
  EXPECT_NO_THROW(Tokenizer({"a", "b"}, {}, {}, 1, -1, -1));
}

std::vector<uint8_t> vocab_file(const std::string& model, bool bad_scores, int64_t bos) {
  tqtest::GgufWriter w;
  w.kv_str("tokenizer.ggml.model", model);
  w.kv_strs("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "▁", "x", "▁x"});
  w.kv_arr<float>("tokenizer.ggml.scores", 6, bad_scores ? std::vector<float>{0, 0} : std::vector<float>{0, 0, 0, -2, -2, -1});
  w.kv_arr<int32_t>("tokenizer.ggml.token_type", 5, {2, 3, 3, 1, 1, 1});
  w.kv_u32("tokenizer.ggml.bos_token_id", uint32_t(bos));
  return w.bytes();
}

TEST(Tokenizer, ReadsGgufVocabulary) {
  const auto good = vocab_file("llama", false, 1);
  const auto f = tq::gguf::File::parse(good.data(), good.size());
  const auto tk = Tokenizer::from_gguf(f);
  EXPECT_EQ(tk.vocab_size(), 6);
  EXPECT_EQ(tk.bos(), 1);
  EXPECT_EQ(tk.eos(), 2);
  EXPECT_EQ(tk.encode("x x"), (std::vector<int32_t>{5, 5}));
  for (auto [bytes, status] : {std::pair{vocab_file("gpt2", false, 1), tq::Status::kUnsupported},
                               std::pair{vocab_file("llama", true, 1), tq::Status::kInvalidArgument},
                               std::pair{vocab_file("llama", false, 6), tq::Status::kInvalidArgument}}) {
    const auto g = tq::gguf::File::parse(bytes.data(), bytes.size());
    try {
      Tokenizer::from_gguf(g);
      ADD_FAILURE() << "accepted";
    } catch (const tq::Error& e) {
      EXPECT_EQ(e.status(), status) << e.what();
    }
  }
  const auto none = vocab_file("llama", false, 0xFFFFFFFFll);  // "no BOS" as writers spell it
  EXPECT_EQ(Tokenizer::from_gguf(tq::gguf::File::parse(none.data(), none.size())).bos(), -1);
}

std::string shared(const std::string& rel) { return std::string(TQ_SHARED_DIR) + "/" + rel; }

TEST(Tokenizer, Stories260KVocabulary) {
  if (!std::filesystem::exists(shared("data/stories260K.gguf"))) GTEST_SKIP() << "needs ../shared/data";
  const auto f = tq::gguf::File::open(shared("data/stories260K.gguf"));
  const auto tk = Tokenizer::from_gguf(f);
  EXPECT_EQ(tk.vocab_size(), 512);
  EXPECT_EQ(tk.bos(), 1);
  // Whole words in the vocabulary come out whole.
  EXPECT_EQ(texts(tk, tk.encode("Once upon a time")), (V{"▁Once", "▁upon", "▁a", "▁time"}));
  // Every shipped text round-trips exactly (a chunk of each; byte fallback covers ’, “, é, ...).
  for (const auto& e : std::filesystem::directory_iterator(shared("data/text"))) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str().substr(ss.str().size() / 3, 20000);
    const auto ids = tk.encode(text);
    EXPECT_LT(ids.size(), text.size()) << e.path();  // merges happen
    EXPECT_EQ(tk.decode(ids), text) << e.path();
  }
}

}  // namespace
