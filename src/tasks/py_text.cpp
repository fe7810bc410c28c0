#define PCRE2_CODE_UNIT_WIDTH 8
#include "tasks/py_text.h"

#include <pcre2.h>

#include <locale.h>
#include <clocale>
#include <cwctype>

#include "core/error.h"

namespace cvq::metrics {
namespace {

// ---------------------------------------------------------------------------------------------
// UTF-8

// Decodes one code point at s[i]; returns the byte length, or 0 for an invalid sequence.
size_t decode_one(std::string_view s, size_t i, char32_t& cp) {
  const auto c0 = static_cast<unsigned char>(s[i]);
  if (c0 < 0x80) {
    cp = c0;
    return 1;
  }
  size_t len;
  char32_t min;
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    len = 2, cp = c0 & 0x1F, min = 0x80;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    len = 3, cp = c0 & 0x0F, min = 0x800;
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    len = 4, cp = c0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_valid_utf8(std::string_view s) {
  char32_t cp = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = decode_one(s, i, cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Python str.isspace(): Unicode White_Space-ish set CPython uses (bidi WS/B/S or category Zs).
bool py_isspace(char32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return true;
  if (c < 0x80) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

locale_t utf8_locale() {
  static locale_t loc = [] {
    for (const char* name : {"C.UTF-8", "C.utf8", "en_US.UTF-8", "en_US.utf8"}) {
      if (locale_t l = newlocale(LC_CTYPE_MASK, name, static_cast<locale_t>(0))) return l;
    }
    return static_cast<locale_t>(0);
  }();
  return loc;
}

// Fallback when no UTF-8 locale exists: Latin-1, Latin Extended-A, Greek, Cyrillic.
char32_t lower_fallback(char32_t c) {
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 0x20;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149) {
    const bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper) return (c % 2 == 1) ? c + 1 : c;
    return (c % 2 == 0) ? c + 1 : c;
  }
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 0x20;
  if (c >= 0x410 && c <= 0x42F) return c + 0x20;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  return c;
}

char32_t lower_cp(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (locale_t loc = utf8_locale()) return static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), loc));
  return lower_fallback(c);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// text helpers

std::string sanitize_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  char32_t cp = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = decode_one(s, i, cp);
    if (n == 0) {
      append_utf8(out, 0xFFFD);
      // One U+FFFD per maximal invalid subpart: a valid lead byte swallows the continuation bytes
      // that follow it (a truncated sequence), a stray byte is replaced alone.
      const auto c0 = static_cast<unsigned char>(s[i]);
      const size_t expect = (c0 >= 0xC2 && c0 <= 0xDF)   ? 2
                            : (c0 >= 0xE0 && c0 <= 0xEF) ? 3
                            : (c0 >= 0xF0 && c0 <= 0xF4) ? 4
                                                         : 1;
      ++i;
      for (size_t k = 1; k < expect && i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80; ++k) ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::u32string utf8_to_u32(std::string_view s_in) {
  const std::string s = sanitize_utf8(s_in);
  std::u32string out;
  out.reserve(s.size());
  char32_t cp = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = decode_one(s, i, cp);
    out.push_back(cp);
    i += n;
  }
  return out;
}

std::string u32_to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

namespace {
bool is_letter(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (locale_t loc = utf8_locale()) return iswalpha_l(static_cast<wint_t>(c), loc) != 0;
  return lower_fallback(c) != c;
}
}  // namespace

std::string py_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const std::u32string u = utf8_to_u32(s);
  for (size_t i = 0; i < u.size(); ++i) {
    const char32_t c = u[i];
    if (c == 0x130) {  // İ lowercases to "i" + combining dot above in Python (full case mapping)
      out += 'i';
      append_utf8(out, 0x307);
      continue;
    }
    if (c == 0x3A3) {  // Σ at the end of a word becomes final sigma ς (Python's Final_Sigma rule)
      const bool after_letter = i > 0 && is_letter(u[i - 1]);
      const bool before_letter = i + 1 < u.size() && is_letter(u[i + 1]);
      append_utf8(out, after_letter && !before_letter ? 0x3C2 : 0x3C3);
      continue;
    }
    append_utf8(out, lower_cp(c));
  }
  return out;
}

std::vector<std::string> py_split(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  for (char32_t c : utf8_to_u32(s)) {
    if (py_isspace(c)) {
      if (in_word) out.push_back(std::move(cur)), cur.clear();
      in_word = false;
    } else {
      append_utf8(cur, c);
      in_word = true;
    }
  }
  if (in_word) out.push_back(std::move(cur));
  return out;
}

std::vector<std::string> split_on(std::string_view s, std::string_view sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t p = s.find(sep, start);
    if (p == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      break;
    }
    out.emplace_back(s.substr(start, p - start));
    start = p + sep.size();
  }
  return out;
}

std::string first_line(std::string_view pred) {
  size_t b = 0;
  while (b < pred.size() && pred[b] == '\n') ++b;
  pred.remove_prefix(b);
  const size_t nl = pred.find('\n');
  return std::string(nl == std::string_view::npos ? pred : pred.substr(0, nl));
}

std::string py_strip(std::string_view s) {
  std::u32string u = utf8_to_u32(s);
  size_t b = 0, e = u.size();
  while (b < e && py_isspace(u[b])) ++b;
  while (e > b && py_isspace(u[e - 1])) --e;
  return u32_to_utf8(std::u32string_view(u).substr(b, e - b));
}

// ---------------------------------------------------------------------------------------------
// PCRE2 with Python-like Unicode semantics (\d, \w, \b over Unicode properties).

Regex::Regex(const char* pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off,
                        nullptr);
  if (!code_) throw Error(std::string("metrics: bad regex ") + pattern);
}

Regex::~Regex() { pcre2_code_free(code_); }

std::vector<Regex::Match> Regex::find_all(std::string_view s) const {
  std::vector<Match> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
  size_t start = 0;
  while (start <= s.size()) {
    const int rc =
        pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    Match m{ov[0], ov[1], {}};
    for (int g = 1; g < rc; ++g) m.groups.emplace_back(ov[2 * g], ov[2 * g + 1]);
    out.push_back(m);
    if (ov[1] > ov[0]) {
      start = ov[1];
    } else {  // empty match: step over one code point
      if (ov[1] >= s.size()) break;
      start = ov[1] + 1;
      while (start < s.size() && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) ++start;
    }
  }
  pcre2_match_data_free(md);
  return out;
}

std::string Regex::replace_all(std::string_view s, std::string_view repl) const {
  std::string out;
  size_t last = 0;
  for (const auto& m : find_all(s)) {
    out.append(s.substr(last, m.begin - last));
    out.append(repl);
    last = m.end;
  }
  out.append(s.substr(last));
  return out;
}

std::vector<std::string> findall_text(const Regex& re, std::string_view s, int group) {
  std::vector<std::string> out;
  for (const auto& m : re.find_all(s)) {
    if (group == 0) {
      out.emplace_back(s.substr(m.begin, m.end - m.begin));
    } else if (static_cast<size_t>(group) <= m.groups.size() && m.groups[group - 1].first != Regex::kUnset) {
      out.emplace_back(s.substr(m.groups[group - 1].first, m.groups[group - 1].second - m.groups[group - 1].first));
    } else {
      out.emplace_back();
    }
  }
  return out;
}

}  // namespace cvq::metrics
