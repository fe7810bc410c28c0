// Pre-tokenizer regexes (chosen as llama.cpp's llm_tokenizer_bpe chooses them), UTF-8 handling with
// llama.cpp's rules, and the GPT-2 byte <-> unicode table. See pretokenizer.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/pretokenizer.h"

#include <pcre2.h>

#include <unordered_map>

#include "core/error.h"

namespace cvq {

// ---------------------------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------------------------

size_t utf8_sequence_length(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp <= 0x7F) {
    out.push_back(static_cast<char>(cp));
  } else if (cp <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp <= 0x10FFFF) {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    append_utf8(out, 0xFFFD);
  }
}

namespace {

constexpr uint32_t kReplacement = 0xFFFD;
constexpr uint32_t kInvalid = 0xFFFFFFFFu;

inline bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

// One step of llama.cpp's unicode_cpt_from_utf8. Returns kInvalid (and consumes nothing) for a
// malformed sequence; the caller then emits U+FFFD and skips one byte.
inline uint32_t decode_one(const uint8_t* s, size_t n, size_t& i) {
  const uint8_t b0 = s[i];
  if (!(b0 & 0x80)) {
    i += 1;
    return b0;
  }
  if (!(b0 & 0x40)) return kInvalid;
  if (!(b0 & 0x20)) {
    if (i + 1 >= n || !is_cont(s[i + 1])) return kInvalid;
    const uint32_t cp = ((b0 & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
    i += 2;
    return cp;
  }
  if (!(b0 & 0x10)) {
    if (i + 2 >= n || !is_cont(s[i + 1]) || !is_cont(s[i + 2])) return kInvalid;
    const uint32_t cp = ((b0 & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
    i += 3;
    return cp;
  }
  if (!(b0 & 0x08)) {
    if (i + 3 >= n || !is_cont(s[i + 1]) || !is_cont(s[i + 2]) || !is_cont(s[i + 3])) return kInvalid;
    const uint32_t cp =
        ((b0 & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu);
    i += 4;
    return cp;
  }
  return kInvalid;
}

// True when every byte is ASCII or part of a well-formed, shortest-form sequence; such text is
// returned unchanged by sanitize_utf8 (the common case, checked first for speed).
bool is_canonical_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    const size_t start = i;
    const uint32_t cp = decode_one(s, n, i);
    if (cp == kInvalid || cp > 0x10FFFF) return false;
    const size_t len = i - start;
    const size_t want = cp <= 0x7F ? 1 : cp <= 0x7FF ? 2 : cp <= 0xFFFF ? 3 : 4;
    if (len != want) return false;  // overlong: llama.cpp re-encodes it shorter
  }
  return true;
}

}  // namespace

std::vector<uint32_t> decode_utf8_lenient(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  std::vector<uint32_t> out;
  out.reserve(n);
  size_t i = 0;
  while (i < n) {
    const uint32_t cp = decode_one(s, n, i);
    if (cp == kInvalid) {
      out.push_back(kReplacement);
      ++i;
    } else {
      out.push_back(cp);
    }
  }
  return out;
}

std::string sanitize_utf8(std::string_view text) {
  if (is_canonical_utf8(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  for (uint32_t cp : decode_utf8_lenient(text)) append_utf8(out, cp);
  return out;
}

// ---------------------------------------------------------------------------------------------
// GPT-2 byte <-> unicode
// ---------------------------------------------------------------------------------------------

namespace {

struct ByteTables {
  std::array<std::string, 256> to_utf8;
  std::array<uint32_t, 256> to_cp{};
  std::unordered_map<uint32_t, uint8_t> from_cp;
  ByteTables() {
    std::array<bool, 256> direct{};
    for (int b = 0x21; b <= 0x7E; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const uint32_t cp = direct[b] ? static_cast<uint32_t>(b) : next++;
      to_cp[b] = cp;
      append_utf8(to_utf8[b], cp);
      from_cp[cp] = static_cast<uint8_t>(b);
    }
  }
};

const ByteTables& byte_tables() {
  static const ByteTables tables;
  return tables;
}

}  // namespace

const std::string& gpt2_byte_to_utf8(uint8_t b) { return byte_tables().to_utf8[b]; }

int gpt2_codepoint_to_byte(uint32_t cp) {
  const auto& m = byte_tables().from_cp;
  const auto it = m.find(cp);
  return it == m.end() ? -1 : it->second;
}

// ---------------------------------------------------------------------------------------------
// Regex selection (llama-vocab.cpp: llama_vocab::impl::load + llm_tokenizer_bpe)
// ---------------------------------------------------------------------------------------------

namespace {

const char* const kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const char* const kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen35 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
    "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kTekken =
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+"
    "(("
    "?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kGpt4o =
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL]"
    "["
    "lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]"
    "|'"
    "[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kBailing =
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";
const char* const kSeedCoder =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| "
    "?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

bool one_of(std::string_view s, std::initializer_list<std::string_view> names) {
  for (auto n : names) {
    if (s == n) return true;
  }
  return false;
}

}  // namespace

const char* gpt2_pretokenizer_regex() { return kGpt2; }

PretokenizerConfig pretokenizer_config_for(std::string_view pre) {
  PretokenizerConfig c;
  if (pre.empty() || pre == "default") {
    c.regexes = {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"};
  } else if (one_of(pre, {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                          "jina-v5-nano"})) {
    c.regexes = {kLlama3};
    c.ignore_merges = true;
  } else if (one_of(pre, {"dbrx", "smaug-bpe", "glm4", "chatglm-bpe"})) {
    c.regexes = {kLlama3};
  } else if (one_of(pre,
                    {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2"})) {
    c.regexes = {"\\p{N}", kGpt2};
  } else if (one_of(pre,
                    {"gpt-2",      "gpt2",    "phi-2",  "jina-es",     "jina-de",    "gigachat",       "jina-v2-es",
                     "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code",   "roberta-bpe",
                     "mpt",        "olmo",    "jais",   "exaone4",     "trillion",   "granite-docling"})) {
    c.regexes = {kGpt2};
  } else if (one_of(pre, {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "grok-2"})) {
    c.regexes = {kQwen2};
  } else if (pre == "qwen35") {
    c.regexes = {kQwen35};
  } else if (pre == "deepseek-coder") {
    c.regexes = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"};
  } else if (pre == "falcon") {
    c.regexes = {"[\\p{P}\\$\\+<=>\\^~\\|`]+",
                 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", "[0-9][0-9][0-9]"};
  } else if (one_of(pre, {"poro-chat", "bloom", "gpt3-finnish"})) {
    c.regexes = {" ?[^(\\s|.,!?…。，、।۔،)]+"};
  } else if (pre == "viking") {
    c.regexes = {" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"};
  } else if (pre == "tekken") {
    c.regexes = {kTekken};
    c.ignore_merges = true;
  } else if (pre == "chameleon") {
    c.regexes = {
        "<sentinel:[0-9]+>",      "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
        "([\\t\\n]|    |  )",     "\\p{N}",
        "[\\p{P}!-/:-@\\[-`{-~]", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"};
  } else if (one_of(pre, {"gpt-4o", "llama4", "kanana2", "talkie"})) {
    c.regexes = {kGpt4o};
  } else if (pre == "superbpe") {
    c.regexes = {"\\p{N}+", "(?=(\\d{3})+(?!\\d))"};
  } else if (one_of(pre, {"bailingmoe", "bailingmoe2", "llada-moe"})) {
    c.regexes = {kBailing};
  } else if (pre == "seed-coder") {
    c.regexes = {kSeedCoder};
  } else {
    throw Error("unsupported pre-tokenizer '" + std::string(pre) +
                "' (tokenizer.ggml.pre); supported: default, smollm, llama-bpe, qwen2, gpt-2 and their llama.cpp "
                "aliases");
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// PCRE2 splitting (llama.cpp unicode_regex_split semantics)
// ---------------------------------------------------------------------------------------------

namespace {

// llama.cpp's whitespace set (Unicode White_Space), written as a class body.
const char* const kWhitespaceBody =
    "\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

}  // namespace

std::string Pretokenizer::translate_regex(std::string_view r) {
  std::string out;
  out.reserve(r.size() * 2);
  bool in_class = false;
  for (size_t i = 0; i < r.size(); ++i) {
    const char ch = r[i];
    if (ch == '\\' && i + 1 < r.size()) {
      const char e = r[i + 1];
      if (e == 's') {
        if (in_class) {
          out += kWhitespaceBody;
        } else {
          out += '[';
          out += kWhitespaceBody;
          out += ']';
        }
        ++i;
        continue;
      }
      if (e == 'S' && !in_class) {
        out += "[^";
        out += kWhitespaceBody;
        out += ']';
        ++i;
        continue;
      }
      if (e == 'p' && i + 2 < r.size() && r[i + 2] == '{') {
        const size_t close = r.find('}', i + 3);
        if (close != std::string_view::npos) {
          std::string_view name = r.substr(i + 3, close - (i + 3));
          // llama.cpp maps every letter sub-category to "letter".
          if (name == "Lu" || name == "Ll" || name == "Lt" || name == "Lm" || name == "Lo") name = "L";
          out += "\\p{";
          out += name;
          out += '}';
          i = close;
          continue;
        }
      }
      out += ch;
      out += e;
      ++i;
      continue;
    }
    if (!in_class && ch == '[') {
      in_class = true;
      out += ch;
      // A ']' right after '[' or '[^' is a literal in PCRE; copy it so it does not close the class.
      if (i + 1 < r.size() && r[i + 1] == '^') {
        out += '^';
        ++i;
      }
      if (i + 1 < r.size() && r[i + 1] == ']') {
        out += ']';
        ++i;
      }
      continue;
    }
    if (in_class && ch == ']') in_class = false;
    out += ch;
  }
  return out;
}

struct Pretokenizer::Compiled {
  pcre2_code* code = nullptr;
  std::string source;
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

Pretokenizer::Pretokenizer(const std::vector<std::string>& regexes) {
  for (const auto& r : regexes) {
    auto c = std::make_unique<Compiled>();
    c->source = r;
    const std::string pattern = translate_regex(r);
    int err = 0;
    PCRE2_SIZE err_off = 0;
    c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                            PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
    if (!c->code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw Error("pre-tokenizer regex '" + r + "' does not compile at offset " + std::to_string(err_off) + ": " +
                  reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE);  // optional: falls back to the interpreter
    compiled_.push_back(std::move(c));
  }
}

Pretokenizer::~Pretokenizer() = default;

std::vector<std::string_view> Pretokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  std::vector<std::string_view> next;
  for (const auto& c : compiled_) {
    next.clear();
    next.reserve(pieces.size() * 2);
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(c->code, nullptr);
    if (!md) throw Error("pre-tokenizer: out of memory creating PCRE2 match data");
    for (std::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      const size_t len = piece.size();
      size_t start = 0;  // where the next search begins
      size_t last = 0;   // end of what has been emitted so far
      while (start <= len) {
        const int rc = pcre2_match(c->code, subject, len, start, 0, md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          pcre2_match_data_free(md);
          PCRE2_UCHAR msg[256];
          pcre2_get_error_message(rc, msg, sizeof msg);
          throw Error("pre-tokenizer regex '" + c->source + "' failed: " + reinterpret_cast<const char*>(msg));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t s = ov[0], e = ov[1];
        if (s > last) next.push_back(piece.substr(last, s - last));
        if (e > s) {
          next.push_back(piece.substr(s, e - s));
          last = e;
          start = e;
        } else {  // empty match: it only marks a split point
          last = s;
          if (s >= len) break;
          start = s + std::min(utf8_sequence_length(static_cast<uint8_t>(piece[s])), len - s);
        }
      }
      if (last < len) next.push_back(piece.substr(last));
    }
    pcre2_match_data_free(md);
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace cvq
