// Tokenizer: synthetic BPE/SPM vocabularies with hand-worked ids, the pre-tokenizer regexes, and the
// real SmolLM2 vocabulary against llama.cpp's own output (tests/fixtures/llamacpp_reference.json,
// made by scripts/make-llamacpp-fixture.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "model/gguf.h"
#include "model/pretokenizer.h"
#include "model/tokenizer.h"
#include "support/test_env.h"

namespace cvq {
namespace {

using Ids = std::vector<int32_t>;

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split(const std::string& pre, const std::string& text) {
  Pretokenizer p(pretokenizer_config_for(pre).regexes);
  std::vector<std::string> out;
  for (auto v : p.split(text)) out.emplace_back(v);
  return out;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 and the GPT-2 byte table
// ---------------------------------------------------------------------------------------------

TEST(TokenizerUtf8, SanitizeFollowsLlamaCpp) {
  EXPECT_EQ(sanitize_utf8("héllo 日本 🎉"), "héllo 日本 🎉");
  EXPECT_EQ(sanitize_utf8("\xff"), "\xEF\xBF\xBD");                    // stray byte -> U+FFFD
  EXPECT_EQ(sanitize_utf8("a\xC3"), "a\xEF\xBF\xBD");                  // truncated sequence
  EXPECT_EQ(sanitize_utf8("\xE2\x82z"), "\xEF\xBF\xBD\xEF\xBF\xBDz");  // one U+FFFD per bad byte
  EXPECT_EQ(sanitize_utf8("\xC0\x80"), std::string("\0", 1));          // overlong NUL is re-encoded short
  EXPECT_EQ(decode_utf8_lenient("a€"), (std::vector<uint32_t>{'a', 0x20AC}));
}

TEST(TokenizerUtf8, Gpt2ByteTable) {
  EXPECT_EQ(gpt2_byte_to_utf8(' '), "Ġ");
  EXPECT_EQ(gpt2_byte_to_utf8('\n'), "Ċ");
  EXPECT_EQ(gpt2_byte_to_utf8('a'), "a");
  EXPECT_EQ(gpt2_byte_to_utf8(0xAD), "Ń");  // soft hyphen: the last unprintable byte, U+0100 + 67
  for (int b = 0; b < 256; ++b) {
    const auto cps = decode_utf8_lenient(gpt2_byte_to_utf8(static_cast<uint8_t>(b)));
    ASSERT_EQ(cps.size(), 1u);
    EXPECT_EQ(gpt2_codepoint_to_byte(cps[0]), b);
  }
  EXPECT_EQ(gpt2_codepoint_to_byte(0x20AC), -1);
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer
// ---------------------------------------------------------------------------------------------

using Pieces = std::vector<std::string>;

TEST(Pretokenizer, SmolLMSplitsDigitsOneByOne) {
  EXPECT_EQ(split("smollm", "I have 123 apples"), (Pieces{"I", " have", " ", "1", "2", "3", " apples"}));
  EXPECT_EQ(split("smollm", "x²"), (Pieces{"x", "²"}));  // \p{N}, not just ASCII digits
}

TEST(Pretokenizer, Gpt2Regex) {
  EXPECT_EQ(split("gpt-2", "don't DON'T"), (Pieces{"don", "'t", " DON", "'", "T"}));
  EXPECT_EQ(split("gpt-2", "a  b"), (Pieces{"a", " ", " b"}));
  EXPECT_EQ(split("gpt-2", "a\n\nb"), (Pieces{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split("gpt-2", "end   "), (Pieces{"end", "   "}));
  EXPECT_EQ(split("gpt-2", "x 12!?"), (Pieces{"x", " 12", "!?"}));
  // Non-ASCII white space counts as \s (llama.cpp's White_Space set), and stays its own piece.
  EXPECT_EQ(split("gpt-2", "a\u3000b"), (Pieces{"a", "\u3000", "b"}));
  EXPECT_EQ(split("gpt-2", "a\u00A0 b"), (Pieces{"a", "\u00A0", " b"}));
}

TEST(Pretokenizer, DefaultUsesLlamaCppsFourRegexes) {
  // "default" is not plain GPT-2 in llama.cpp: punctuation runs and 3-digit groups split first.
  EXPECT_EQ(split("default", "abc 12345!"), (Pieces{"abc", " ", "123", "45", "!"}));
}

TEST(Pretokenizer, Llama3AndQwen2) {
  EXPECT_EQ(split("llama-bpe", "12345 DON'T"), (Pieces{"123", "45", " DON", "'T"}));
  EXPECT_EQ(split("llama-bpe", "a\n\n  b"), (Pieces{"a", "\n\n", " ", " b"}));
  EXPECT_EQ(split("llama-bpe", "x...\n\ny"), (Pieces{"x", "...\n\n", "y"}));
  EXPECT_EQ(split("qwen2", "12345"), (Pieces{"1", "2", "3", "4", "5"}));
}

TEST(Pretokenizer, UnknownPreIsAnError) { EXPECT_THROW(pretokenizer_config_for("no-such-pre"), Error); }

TEST(Pretokenizer, RegexTranslation) {
  const std::string t = Pretokenizer::translate_regex("\\s+(?!\\S)|[^\\s\\p{Lu}]");
  EXPECT_NE(t.find("[\\t\\n"), std::string::npos);
  EXPECT_NE(t.find("[^\\t\\n"), std::string::npos);
  EXPECT_NE(t.find("\\p{L}]"), std::string::npos);  // \p{Lu} collapses to \p{L}, as in llama.cpp
  EXPECT_EQ(t.find("\\s"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Synthetic byte-level BPE vocabulary
// ---------------------------------------------------------------------------------------------

// ids: 0 <|endoftext|> (control), 1 <|im_start|> (control), 2 <|im_end|> (control), 3 "<|im"
// (user-defined), 4..259 the 256 byte symbols, then merged tokens.
struct TinyBpe {
  TokenizerData data;
  int32_t id(const std::string& text) const {
    for (size_t i = 0; i < data.tokens.size(); ++i) {
      if (data.tokens[i] == text) return static_cast<int32_t>(i);
    }
    ADD_FAILURE() << "no token " << text;
    return -1;
  }
  int32_t byte(char c) const { return id(gpt2_byte_to_utf8(static_cast<uint8_t>(c))); }
};

TinyBpe tiny_bpe(const std::string& pre = "gpt-2") {
  TinyBpe t;
  TokenizerData& d = t.data;
  d.model = "gpt2";
  d.pre = pre;
  d.tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im"};
  d.token_types = {3, 3, 3, 4};
  for (int b = 0; b < 256; ++b) {
    d.tokens.push_back(gpt2_byte_to_utf8(static_cast<uint8_t>(b)));
    d.token_types.push_back(1);
  }
  for (const char* merged : {"he", "Ġt", "Ġthe", "bc", "ll", "ell"}) {
    d.tokens.push_back(merged);
    d.token_types.push_back(1);
  }
  // Ranks: "h e" < "Ġ t" < "Ġt he" < "b c" < "a b" ("ab" is not a token) < "x y" ("xy" is not a token).
  d.merges = {"h e", "Ġ t", "Ġt he", "b c", "a b", "x y", "l l", "e ll"};
  d.bos_id = 0;
  d.eos_id = 0;
  d.add_space_prefix = false;
  return t;
}

TEST(TokenizerBpe, MergesByRank) {
  const TinyBpe t = tiny_bpe();
  const Tokenizer tok(t.data);
  // "Ġthe": h+e (rank 0), then Ġ+t (rank 1), then Ġt+he (rank 2).
  EXPECT_EQ(tok.encode(" the", false, false), (Ids{t.id("Ġthe")}));
  // "abc": b+c (rank 3) beats a+b (rank 4); "a bc" is no merge.
  EXPECT_EQ(tok.encode("abc", false, false), (Ids{t.byte('a'), t.id("bc")}));
  // A merge whose result is not a token: llama.cpp falls back to the single-byte tokens.
  EXPECT_EQ(tok.encode("xy", false, false), (Ids{t.byte('x'), t.byte('y')}));
  // "hell": "h e" (rank 0) first, then "l l" (6); "e ll" (7) never applies since e is gone.
  EXPECT_EQ(tok.encode("hell", false, false), (Ids{t.id("he"), t.id("ll")}));
  EXPECT_EQ(tok.decode(tok.encode(" the abc", false, false)), " the abc");
}

TEST(TokenizerBpe, SpecialTokensLongestFirst) {
  const TinyBpe t = tiny_bpe();
  const Tokenizer tok(t.data);
  const Ids parsed = tok.encode("<|im_start|>he<|im_end|>", false, true);
  EXPECT_EQ(parsed, (Ids{1, t.id("he"), 2}));
  // Without parse_special, control tokens are text; the user-defined "<|im" is still recognised.
  const Ids raw = tok.encode("<|im_start|>", false, false);
  ASSERT_FALSE(raw.empty());
  EXPECT_EQ(raw[0], 3);
  EXPECT_EQ(tok.decode(raw), "<|im_start|>");
  EXPECT_EQ(tok.decode(parsed), "<|im_start|>he<|im_end|>");
  EXPECT_EQ(tok.encode("x", true, false), (Ids{0, t.byte('x')}));
}

// Special tokens found by their text: FIM pad / repo / file-separator end generation (as in
// llama.cpp), FIM prefix / suffix / middle and <|eom_id|> become control tokens, a normal token with
// other text stays normal.
TEST(TokenizerBpe, SpecialTokensByText) {
  TinyBpe t = tiny_bpe();
  for (const char* text : {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|repo_name|>",
                           "<|file_sep|>", "<|eom_id|>", "<|fim_notreal|>"}) {
    t.data.tokens.push_back(text);
    t.data.token_types.push_back(1);
  }
  const Tokenizer tok(t.data);
  for (const char* text : {"<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|eom_id|>"})
    EXPECT_TRUE(tok.is_end_of_generation(t.id(text))) << text;
  for (const char* text : {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_notreal|>"})
    EXPECT_FALSE(tok.is_end_of_generation(t.id(text))) << text;
  // Control tokens are parsed as one token when special tokens are parsed; a normal one is BPE text.
  EXPECT_EQ(tok.encode("<|fim_prefix|>", false, true), (std::vector<int32_t>{t.id("<|fim_prefix|>")}));
  EXPECT_GT(tok.encode("<|fim_notreal|>", false, true).size(), 1u);
}

TEST(TokenizerBpe, EndOfGenerationAndLookups) {
  const TinyBpe t = tiny_bpe();
  const Tokenizer tok(t.data);
  EXPECT_TRUE(tok.is_end_of_generation(0));  // eos and <|endoftext|>
  EXPECT_TRUE(tok.is_end_of_generation(2));  // <|im_end|> by its text
  EXPECT_FALSE(tok.is_end_of_generation(1));
  EXPECT_FALSE(tok.is_end_of_generation(-1));
  EXPECT_EQ(tok.find_token("<|im_end|>"), std::optional<int32_t>(2));
  EXPECT_FALSE(tok.find_token("nope").has_value());
  EXPECT_EQ(tok.vocab_size(), t.data.tokens.size());
  EXPECT_THROW(tok.token_to_piece(static_cast<int32_t>(t.data.tokens.size())), Error);
  EXPECT_THROW(tok.decode({-1}), Error);
}

TEST(TokenizerBpe, ByteRoundTripsIncludingInvalidUtf8) {
  const TinyBpe t = tiny_bpe();
  const Tokenizer tok(t.data);
  for (const std::string& s :
       std::vector<std::string>{"héllo wörld", "日本語 🎉", "tab\there\r\n", std::string("nul\0byte", 8), "  x  "}) {
    EXPECT_EQ(tok.decode(tok.encode(s, false, false)), s);
  }
  // Malformed UTF-8 is tokenized as U+FFFD, exactly as llama.cpp does.
  EXPECT_EQ(tok.decode(tok.encode("a\xff", false, false)), "a\xEF\xBF\xBD");
}

TEST(TokenizerBpe, BadVocabulariesAreErrors) {
  TinyBpe t = tiny_bpe();
  TokenizerData d = t.data;
  d.model = "wordpiece";
  EXPECT_THROW(Tokenizer{d}, Error);
  d = t.data;
  d.tokens[10] = d.tokens[11];
  EXPECT_THROW(Tokenizer{d}, Error);
  d = t.data;
  d.pre = "made-up";
  EXPECT_THROW(Tokenizer{d}, Error);
  d = t.data;
  d.token_types.resize(3);
  EXPECT_THROW(Tokenizer{d}, Error);
  d = t.data;
  d.bos_id = -1;
  EXPECT_THROW(Tokenizer(d).encode("x", true, false), Error);
}

// ---------------------------------------------------------------------------------------------
// Synthetic SentencePiece vocabulary
// ---------------------------------------------------------------------------------------------

// 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then pieces with scores.
constexpr int32_t kByte0 = 3;
constexpr int32_t kSpace = 259, kA = 260, kB = 261, kC = 262, kAB = 263, kBC = 264, kSpA = 265, kABC = 266, kSpAB = 267,
                  kSpABC = 268, kAA = 269;

TokenizerData tiny_spm() {
  TokenizerData d;
  d.model = "llama";
  d.tokens = {"<unk>", "<s>", "</s>"};
  d.token_types = {2, 3, 3};
  d.scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    d.tokens.push_back(buf);
    d.token_types.push_back(6);
    d.scores.push_back(0);
  }
  const std::vector<std::pair<std::string, float>> pieces = {
      {"▁", -1.0f},  {"a", -1.0f},   {"b", -1.0f},   {"c", -1.0f},    {"ab", -1.0f}, {"bc", -0.5f},
      {"▁a", -2.0f}, {"abc", -0.1f}, {"▁ab", -3.0f}, {"▁abc", -0.2f}, {"aa", -1.0f}};
  for (const auto& [text, score] : pieces) {
    d.tokens.push_back(text);
    d.token_types.push_back(1);
    d.scores.push_back(score);
  }
  d.bos_id = 1;
  d.eos_id = 2;
  d.unk_id = 0;
  d.add_bos = true;
  d.add_space_prefix = true;
  return d;
}

TEST(TokenizerSpm, MergesByScore) {
  const Tokenizer tok(tiny_spm());
  ASSERT_EQ(tok.find_token("aa"), std::optional<int32_t>(kAA));
  // "▁abc": b+c (-0.5) first, then a+bc (-0.1), then ▁+abc (-0.2); "▁a" (-2.0) never wins.
  EXPECT_EQ(tok.encode("abc", false, false), (Ids{kSpABC}));
  // "▁cab": only "ab" is a token among the pairs.
  EXPECT_EQ(tok.encode("cab", false, false), (Ids{kSpace, kC, kAB}));
  // Equal scores: the leftmost pair merges first ("▁|aa|a", not "▁a|aa").
  EXPECT_EQ(tok.encode("aaa", false, false), (Ids{kSpace, kAA, kA}));
  // Spaces become "▁"; "▁b" is not a token.
  EXPECT_EQ(tok.encode("a b", false, false), (Ids{kSpA, kSpace, kB}));
  EXPECT_EQ(tok.encode("abc", true, false), (Ids{1, kSpABC}));
  EXPECT_TRUE(tok.add_bos_default());
  (void)kBC;
  (void)kABC;
  (void)kSpAB;
}

TEST(TokenizerSpm, ByteFallback) {
  const Tokenizer tok(tiny_spm());
  // "€" (E2 82 AC) is no piece: its bytes become <0xE2> <0x82> <0xAC>.
  EXPECT_EQ(tok.encode("a€", false, false), (Ids{kSpA, kByte0 + 0xE2, kByte0 + 0x82, kByte0 + 0xAC}));
  EXPECT_EQ(tok.token_to_piece(kByte0 + 'A'), "A");
  EXPECT_EQ(tok.token_to_piece(kSpA), " a");
}

TEST(TokenizerSpm, SpecialTokensAndSpacePrefix) {
  const Tokenizer tok(tiny_spm());
  // Text after a special token gets the space prefix again (llama.cpp is_prev_special).
  EXPECT_EQ(tok.encode("<s>ab", false, true), (Ids{1, kSpAB}));
  // Unparsed, "<s>" is text: '<' 's' '>' fall back to bytes.
  EXPECT_EQ(tok.encode("<s>ab", false, false), (Ids{kSpace, kByte0 + '<', kByte0 + 's', kByte0 + '>', kAB}));
  TokenizerData d = tiny_spm();
  d.add_space_prefix = false;
  const Tokenizer no_prefix(d);
  EXPECT_EQ(no_prefix.encode("abc", false, false), (Ids{kABC}));
}

TEST(TokenizerSpm, UnknownTokenWithoutByteFallback) {
  TokenizerData d;
  d.model = "llama";
  d.tokens = {"<unk>", "<s>", "</s>", "▁", "a"};
  d.token_types = {2, 3, 3, 1, 1};
  d.scores = {0, 0, 0, -1, -1};
  d.bos_id = 1;
  d.eos_id = 2;
  d.unk_id = 0;
  const Tokenizer tok(d);
  EXPECT_EQ(tok.encode("a€", false, false), (Ids{3, 4, 0, 0, 0}));  // one <unk> per byte
}

TEST(TokenizerSpm, RoundTrips) {
  const Tokenizer tok(tiny_spm());
  for (const std::string s :
       {"abc", "a b  c", " leading", "trailing ", "héllo wörld", "日本語 🎉 ok", "tab\tnew\nline"}) {
    EXPECT_EQ(tok.decode(tok.encode(s, false, false)), s) << s;
  }
  // With BOS the leading space is kept, as llama_detokenize does when the BOS is not removed.
  EXPECT_EQ(tok.decode(tok.encode("abc", true, false)), "<s> abc");
}

// ---------------------------------------------------------------------------------------------
// The real model (SmolLM2) and llama.cpp's reference output
// ---------------------------------------------------------------------------------------------

class SmolTokenizer : public ::testing::Test {
 protected:
  static const Tokenizer& tok() {
    static const Tokenizer t = [] {
      GgufFile f(test::model_path());
      return Tokenizer(tokenizer_data_from_gguf(f));
    }();
    return t;
  }
};

TEST_F(SmolTokenizer, Basics) {
  CVQ_NEED_FILE(model, test::model_path());
  const Tokenizer& t = tok();
  EXPECT_EQ(t.vocab_size(), 49152u);
  EXPECT_FALSE(t.is_spm());
  EXPECT_EQ(t.bos(), 1);
  EXPECT_EQ(t.eos(), 2);
  EXPECT_FALSE(t.add_bos_default());
  EXPECT_TRUE(t.is_end_of_generation(2));  // <|im_end|>
  EXPECT_TRUE(t.is_end_of_generation(0));  // <|endoftext|>
  EXPECT_FALSE(t.is_end_of_generation(1));
  EXPECT_EQ(t.find_token("<|im_start|>"), std::optional<int32_t>(1));
  const Ids chat = t.encode("<|im_start|>user\nHi<|im_end|>\n", false, true);
  ASSERT_GE(chat.size(), 3u);
  EXPECT_EQ(chat.front(), 1);
  EXPECT_NE(std::find(chat.begin(), chat.end(), 2), chat.end());
  EXPECT_NE(t.encode("<|im_start|>", false, false).front(), 1);
  // Digits are single tokens.
  const Ids digits = t.encode("12345", false, false);
  ASSERT_EQ(digits.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(t.token_to_piece(digits[i]), std::string(1, static_cast<char>('1' + i)));
}

TEST_F(SmolTokenizer, RoundTripsUnicode) {
  CVQ_NEED_FILE(model, test::model_path());
  for (const std::string& s :
       std::vector<std::string>{"héllo wörld ñ", "日本語のテキスト", "👍🏽 🎉", "Привет, мир!", "مرحبا",
                                "e\u0301", "a\u3000b\u00A0c", "  \n\n\t x  ", std::string("nul\0byte", 8)}) {
    EXPECT_EQ(tok().decode(tok().encode(s, false, false)), s) << s;
  }
}

nlohmann::json load_reference() {
  return nlohmann::json::parse(read_file_bytes(test::fixture_path("llamacpp_reference.json")));
}

TEST_F(SmolTokenizer, MatchesLlamaCppOnReferenceStrings) {
  CVQ_NEED_FILE(model, test::model_path());
  CVQ_NEED_FILE(fixture, test::fixture_path("llamacpp_reference.json"));
  const auto ref = load_reference();
  int checked = 0;
  for (const auto& item : ref.at("tokenize")) {
    const std::string text = item.at("text");
    const bool special = item.value("special", true);
    const Ids expected = item.at("ids").get<Ids>();
    EXPECT_EQ(tok().encode(text, false, special), expected) << "text: " << nlohmann::json(text).dump();
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST_F(SmolTokenizer, MatchesLlamaCppOnWikiText) {
  CVQ_NEED_FILE(model, test::model_path());
  CVQ_NEED_FILE(fixture, test::fixture_path("llamacpp_reference.json"));
  CVQ_NEED_FILE(wiki, test::data_file("text/wikitext-2-raw/wiki.test.raw"));
  std::string text = read_file_bytes(wiki);
  std::erase(text, '\r');
  const Ids expected = load_reference().at("wikitext").at("token_ids_first_8192").get<Ids>();
  const auto t0 = std::chrono::steady_clock::now();
  Ids ids = tok().encode(text, false, false);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("tokenized WikiText-2 test (%zu bytes) into %zu tokens in %.3f s\n", text.size(), ids.size(), secs);
  ASSERT_GE(ids.size(), expected.size());
  ids.resize(expected.size());
  size_t first_diff = 0;
  while (first_diff < ids.size() && ids[first_diff] == expected[first_diff]) ++first_diff;
  EXPECT_EQ(first_diff, expected.size()) << "first difference at token " << first_diff;
  EXPECT_LT(secs, 10.0);  // ~0.05 s on a desktop core; generous for sanitizer builds
}

}  // namespace
}  // namespace cvq
