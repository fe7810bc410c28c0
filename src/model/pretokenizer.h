#pragma once
// Pre-tokenization for byte-level BPE, as llama.cpp does it (llama-vocab.cpp + unicode.cpp):
//  * the input is decoded with llama.cpp's lenient UTF-8 rules (each bad byte becomes U+FFFD) and
//    re-encoded, so the pieces are always the same bytes llama.cpp would see;
//  * the regex list chosen by tokenizer.ggml.pre is applied in order: each regex splits the pieces
//    produced by the previous one, and unmatched spans stay as pieces of their own;
//  * the pieces are then mapped through the GPT-2 byte -> unicode table before BPE merging.
// The regexes run on PCRE2. llama.cpp's own engines differ from a textbook regex in two ways that
// matter, and both are reproduced: \s means the Unicode White_Space set, and \p{Lu}/\p{Ll}/... all
// mean "any letter" (llama.cpp collapses every letter category into one).
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cvq {

// ---- UTF-8 helpers (llama.cpp semantics) ----

// Length of the UTF-8 sequence a lead byte announces (1 for stray continuation bytes).
size_t utf8_sequence_length(uint8_t lead);
// Appends the UTF-8 encoding of a code point (values above U+10FFFF become U+FFFD).
void append_utf8(std::string& out, uint32_t cp);
// Decodes like llama.cpp's unicode_cpts_from_utf8: a malformed sequence yields U+FFFD and skips
// one byte; overlong forms and surrogates are accepted as they are.
std::vector<uint32_t> decode_utf8_lenient(std::string_view text);
// decode_utf8_lenient followed by re-encoding: the exact bytes llama.cpp's BPE path tokenizes.
std::string sanitize_utf8(std::string_view text);

// ---- GPT-2 byte <-> unicode mapping ----

// UTF-8 text of the printable code point GPT-2 uses for byte b ("Ġ" for ' ', "a" for 'a', ...).
const std::string& gpt2_byte_to_utf8(uint8_t b);
// Inverse: the byte a code point stands for, or -1 when it is not one of the 256 mapped points.
int gpt2_codepoint_to_byte(uint32_t cp);

// ---- Pre-tokenizer ----

struct PretokenizerConfig {
  std::vector<std::string> regexes;  // applied in order
  bool ignore_merges = false;        // llama.cpp: a piece that is a whole token is not merged
};

// GPT-2's pre-tokenizer regex (what a Hugging Face ByteLevel pre-tokenizer with use_regex applies).
const char* gpt2_pretokenizer_regex();

// The configuration llama.cpp uses for tokenizer.ggml.pre == `pre` ("" means "default").
// Throws Error for a pre-tokenizer name llama.cpp would reject (or that is not supported here).
PretokenizerConfig pretokenizer_config_for(std::string_view pre);

class Pretokenizer {
 public:
  explicit Pretokenizer(const std::vector<std::string>& regexes);
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Splits already-sanitized UTF-8 text into pieces (views into `text`, in order, covering it).
  std::vector<std::string_view> split(std::string_view text) const;

  // The PCRE2 pattern a llama.cpp regex was rewritten into (for diagnostics and tests).
  static std::string translate_regex(std::string_view llama_regex);

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> compiled_;
};

}  // namespace cvq
