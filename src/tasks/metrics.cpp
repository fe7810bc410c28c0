#include "tasks/metrics.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <clocale>
#include <cmath>
#include <cwctype>
#include <locale.h>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

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

// ---------------------------------------------------------------------------------------------
// PCRE2 with Python-like Unicode semantics (\d, \w, \b over Unicode properties). Inputs must be
// valid UTF-8 (callers sanitize).

class Regex {
 public:
  explicit Regex(const char* pattern) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                          &off, nullptr);
    if (!code_) throw Error(std::string("metrics: bad regex ") + pattern);
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  struct Match {
    size_t begin, end;                                  // whole match
    std::vector<std::pair<size_t, size_t>> groups;      // (npos, npos) when a group did not take part
  };
  std::vector<Match> find_all(std::string_view s) const {
    std::vector<Match> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t start = 0;
    while (start <= s.size()) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, PCRE2_NO_UTF_CHECK, md,
                                 nullptr);
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
  // re.sub(pattern, repl, s) with a literal replacement.
  std::string replace_all(std::string_view s, std::string_view repl) const {
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

 private:
  pcre2_code* code_ = nullptr;
};

std::vector<std::string> findall_text(const Regex& re, std::string_view s, int group) {
  std::vector<std::string> out;
  for (const auto& m : re.find_all(s)) {
    if (group == 0) {
      out.emplace_back(s.substr(m.begin, m.end - m.begin));
    } else if (static_cast<size_t>(group) <= m.groups.size() && m.groups[group - 1].first != PCRE2_UNSET) {
      out.emplace_back(s.substr(m.groups[group - 1].first, m.groups[group - 1].second - m.groups[group - 1].first));
    } else {
      out.emplace_back();
    }
  }
  return out;
}

std::string py_strip(std::string_view s) {
  std::u32string u = utf8_to_u32(s);
  size_t b = 0, e = u.size();
  while (b < e && py_isspace(u[b])) ++b;
  while (e > b && py_isspace(u[e - 1])) --e;
  return u32_to_utf8(std::u32string_view(u).substr(b, e - b));
}

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

double f1_from_tokens(const std::vector<std::string>& pred, const std::vector<std::string>& gold) {
  std::map<std::string, int> cp, cg;
  for (const auto& w : pred) ++cp[w];
  for (const auto& w : gold) ++cg[w];
  int same = 0;
  for (const auto& [w, n] : cp) {
    auto it = cg.find(w);
    if (it != cg.end()) same += std::min(n, it->second);
  }
  if (same == 0) return 0.0;
  const double precision = 1.0 * same / static_cast<double>(pred.size());
  const double recall = 1.0 * same / static_cast<double>(gold.size());
  return (2 * precision * recall) / (precision + recall);
}

// `rouge` package: [" ".join(p.split()) for p in text.split(".") if len(p) > 0]
std::vector<std::string> rouge_sentences(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& piece : split_on(text, ".")) {
    if (piece.empty()) continue;
    std::string joined;
    for (const auto& w : py_split(piece)) joined += (joined.empty() ? "" : " ") + w;
    out.push_back(joined);
  }
  return out;
}

std::vector<std::string> rouge_words(const std::vector<std::string>& sentences) {
  std::vector<std::string> out;
  for (const auto& s : sentences)
    for (auto& w : split_on(s, " ")) out.push_back(std::move(w));
  return out;
}

// rouge_score._recon_lcs(x, y): the words of the back-traced LCS (same tie-breaking), as a set.
std::set<std::string> recon_lcs(const std::vector<std::string>& x, const std::vector<std::string>& y) {
  const size_t n = x.size(), m = y.size();
  std::vector<int> table((n + 1) * (m + 1), 0);
  auto T = [&](size_t i, size_t j) -> int& { return table[i * (m + 1) + j]; };
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j)
      T(i, j) = (x[i - 1] == y[j - 1]) ? T(i - 1, j - 1) + 1 : std::max(T(i - 1, j), T(i, j - 1));
  std::set<std::string> out;
  size_t i = n, j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] == y[j - 1]) {
      out.insert(x[i - 1]);
      --i, --j;
    } else if (T(i - 1, j) > T(i, j - 1)) {
      --i;
    } else {
      --j;
    }
  }
  return out;
}

const Regex& re_articles() {
  static const Regex r("\\b(a|an|the)\\b");
  return r;
}
const Regex& re_digits() {
  static const Regex r("\\d+");
  return r;
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
      const size_t expect = (c0 >= 0xC2 && c0 <= 0xDF) ? 2 : (c0 >= 0xE0 && c0 <= 0xEF) ? 3 : (c0 >= 0xF0 && c0 <= 0xF4) ? 4 : 1;
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

// ---------------------------------------------------------------------------------------------
// LongBench

std::string normalize_answer(std::string_view s_in) {
  std::string s = py_lower(sanitize_utf8(s_in));
  std::string no_punct;
  no_punct.reserve(s.size());
  static const std::string_view kPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  for (char c : s)
    if (kPunct.find(c) == std::string_view::npos) no_punct += c;
  const std::string no_articles = re_articles().replace_all(no_punct, " ");
  std::string out;
  for (const auto& w : py_split(no_articles)) out += (out.empty() ? "" : " ") + w;
  return out;
}

double qa_f1(std::string_view prediction, std::string_view gold) {
  return f1_from_tokens(py_split(normalize_answer(prediction)), py_split(normalize_answer(gold)));
}

double rouge_l(std::string_view prediction_in, std::string_view gold_in) {
  const std::string prediction = sanitize_utf8(prediction_in), gold = sanitize_utf8(gold_in);
  const auto hyp = rouge_sentences(prediction), ref = rouge_sentences(gold);
  if (hyp.empty() || ref.empty()) return 0.0;  // the package raises ValueError; LongBench scores 0
  const auto ref_words = rouge_words(ref), hyp_words = rouge_words(hyp);
  const double m = static_cast<double>(std::set<std::string>(ref_words.begin(), ref_words.end()).size());
  const double n = static_cast<double>(std::set<std::string>(hyp_words.begin(), hyp_words.end()).size());
  std::vector<std::vector<std::string>> hyp_split;
  for (const auto& h : hyp) hyp_split.push_back(split_on(h, " "));
  std::set<std::string> lcs_union;
  int64_t llcs = 0;
  for (const auto& r : ref) {
    const size_t prev = lcs_union.size();
    const auto r_words = split_on(r, " ");
    for (const auto& h_words : hyp_split) {
      const auto lcs = recon_lcs(r_words, h_words);
      lcs_union.insert(lcs.begin(), lcs.end());
    }
    llcs += static_cast<int64_t>(lcs_union.size() - prev);
  }
  const double r_lcs = static_cast<double>(llcs) / m;
  const double p_lcs = static_cast<double>(llcs) / n;
  return 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8));
}

double rouge_1(std::string_view prediction_in, std::string_view gold_in) {
  const std::string prediction = sanitize_utf8(prediction_in), gold = sanitize_utf8(gold_in);
  const auto hyp = rouge_sentences(prediction), ref = rouge_sentences(gold);
  if (hyp.empty() || ref.empty()) return 0.0;
  const auto hw = rouge_words(hyp), rw = rouge_words(ref);
  const std::set<std::string> hs(hw.begin(), hw.end()), rs(rw.begin(), rw.end());
  size_t overlap = 0;
  for (const auto& w : hs) overlap += rs.count(w);
  const double precision = hs.empty() ? 0.0 : static_cast<double>(overlap) / static_cast<double>(hs.size());
  const double recall = rs.empty() ? 0.0 : static_cast<double>(overlap) / static_cast<double>(rs.size());
  return 2.0 * ((precision * recall) / (precision + recall + 1e-8));
}

double classification(std::string_view prediction_in, std::string_view gold_in, const std::vector<std::string>& all_classes) {
  const std::string prediction = sanitize_utf8(prediction_in), gold = sanitize_utf8(gold_in);
  std::vector<std::string> matches;
  for (const auto& c : all_classes)
    if (contains(prediction, c)) matches.push_back(c);
  // Python: `for t in lst: if ...: lst.remove(t)` — removing while iterating skips the next item,
  // and remove() drops the first equal element. Reproduced as is.
  for (size_t i = 0; i < matches.size(); ++i) {
    const std::string term = matches[i];
    if (contains(gold, term) && term != gold) {
      matches.erase(std::find(matches.begin(), matches.end(), term));
    }
  }
  if (std::find(matches.begin(), matches.end(), gold) == matches.end()) return 0.0;
  return 1.0 / static_cast<double>(matches.size());
}

double retrieval(std::string_view prediction_in, std::string_view gold_in) {
  const std::string prediction = sanitize_utf8(prediction_in), gold = sanitize_utf8(gold_in);
  static const Regex re_para("Paragraph (\\d+)");
  const auto ids = findall_text(re_para, gold, 1);
  if (ids.empty()) throw Error("retrieval metric: the gold answer '" + gold + "' has no 'Paragraph N'");
  const auto numbers = findall_text(re_digits(), prediction, 0);
  if (numbers.empty()) return 0.0;
  const auto right = std::count(numbers.begin(), numbers.end(), ids.front());
  return static_cast<double>(right) / static_cast<double>(numbers.size());
}

double count(std::string_view prediction_in, std::string_view gold_in) {
  const std::string prediction = sanitize_utf8(prediction_in), gold = sanitize_utf8(gold_in);
  const auto numbers = findall_text(re_digits(), prediction, 0);
  if (numbers.empty()) return 0.0;
  const auto right = std::count(numbers.begin(), numbers.end(), gold);
  return static_cast<double>(right) / static_cast<double>(numbers.size());
}

int64_t sequence_matcher_matches(std::u32string_view a, std::u32string_view b, bool autojunk) {
  // difflib.SequenceMatcher.__chain_b: b2j, then "popular" elements (more than 1% of a b of at
  // least 200 items) leave b2j — they cannot start a match but may still extend one.
  std::unordered_map<char32_t, std::vector<int>> b2j;
  for (size_t j = 0; j < b.size(); ++j) b2j[b[j]].push_back(static_cast<int>(j));
  const size_t n = b.size();
  if (autojunk && n >= 200) {
    const size_t ntest = n / 100 + 1;
    for (auto it = b2j.begin(); it != b2j.end();) {
      if (it->second.size() > ntest) {
        it = b2j.erase(it);
      } else {
        ++it;
      }
    }
  }
  auto find_longest_match = [&](int alo, int ahi, int blo, int bhi) {
    int besti = alo, bestj = blo, bestsize = 0;
    std::unordered_map<int, int> j2len, newj2len;
    for (int i = alo; i < ahi; ++i) {
      newj2len.clear();
      auto it = b2j.find(a[i]);
      if (it != b2j.end()) {
        for (int j : it->second) {
          if (j < blo) continue;
          if (j >= bhi) break;
          auto prev = j2len.find(j - 1);
          const int k = (prev == j2len.end() ? 0 : prev->second) + 1;
          newj2len[j] = k;
          if (k > bestsize) besti = i - k + 1, bestj = j - k + 1, bestsize = k;
        }
      }
      std::swap(j2len, newj2len);
    }
    // No isjunk function: bjunk is empty, so only the "non-junk" extension loops can move.
    while (besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1]) --besti, --bestj, ++bestsize;
    while (besti + bestsize < ahi && bestj + bestsize < bhi && a[besti + bestsize] == b[bestj + bestsize]) ++bestsize;
    return std::array<int, 3>{besti, bestj, bestsize};
  };
  int64_t matches = 0;
  std::vector<std::array<int, 4>> queue{{0, static_cast<int>(a.size()), 0, static_cast<int>(b.size())}};
  while (!queue.empty()) {
    const auto [alo, ahi, blo, bhi] = queue.back();
    queue.pop_back();
    const auto [i, j, k] = find_longest_match(alo, ahi, blo, bhi);
    if (k == 0) continue;
    matches += k;
    if (alo < i && blo < j) queue.push_back({alo, i, blo, j});
    if (i + k < ahi && j + k < bhi) queue.push_back({i + k, ahi, j + k, bhi});
  }
  return matches;
}

double sequence_matcher_ratio(std::u32string_view a, std::u32string_view b, bool autojunk) {
  const size_t length = a.size() + b.size();
  if (length == 0) return 1.0;
  return 2.0 * static_cast<double>(sequence_matcher_matches(a, b, autojunk)) / static_cast<double>(length);
}

int fuzz_ratio(std::string_view a_in, std::string_view b_in) {
  const std::u32string a = utf8_to_u32(a_in), b = utf8_to_u32(b_in);
  if (a == b) return 100;                // utils.check_for_equivalence (before the empty check)
  if (a.empty() || b.empty()) return 0;  // utils.check_empty_string
  // utils.intr: int(round(100 * ratio)) — Python rounds halves to even, as nearbyint does.
  return static_cast<int>(std::nearbyint(100 * sequence_matcher_ratio(a, b, true)));
}

double code_sim(std::string_view prediction_in, std::string_view gold) {
  const std::string prediction = sanitize_utf8(prediction_in);
  size_t b = 0;
  while (b < prediction.size() && prediction[b] == '\n') ++b;
  std::string chosen;
  for (const auto& line : split_on(std::string_view(prediction).substr(b), "\n")) {
    if (!contains(line, "`") && !contains(line, "#") && !contains(line, "//")) {
      chosen = line;
      break;
    }
  }
  return fuzz_ratio(chosen, gold) / 100.0;
}

LongBenchMetric longbench_metric(const std::string& d) {
  static const std::map<std::string, LongBenchMetric> m = {
      {"narrativeqa", LongBenchMetric::QaF1},     {"qasper", LongBenchMetric::QaF1},
      {"multifieldqa_en", LongBenchMetric::QaF1}, {"hotpotqa", LongBenchMetric::QaF1},
      {"2wikimqa", LongBenchMetric::QaF1},        {"musique", LongBenchMetric::QaF1},
      {"triviaqa", LongBenchMetric::QaF1},        {"gov_report", LongBenchMetric::RougeL},
      {"qmsum", LongBenchMetric::RougeL},         {"multi_news", LongBenchMetric::RougeL},
      {"samsum", LongBenchMetric::RougeL},        {"trec", LongBenchMetric::Classification},
      {"lsht", LongBenchMetric::Classification},  {"passage_retrieval_en", LongBenchMetric::Retrieval},
      {"passage_count", LongBenchMetric::Count},  {"lcc", LongBenchMetric::CodeSim},
      {"repobench-p", LongBenchMetric::CodeSim},
  };
  auto it = m.find(d);
  if (it == m.end()) {
    std::string known;
    for (const auto& [k, v] : m) known += (known.empty() ? "" : ", ") + k;
    throw Error("LongBench dataset '" + d + "' is not supported (Chinese QA/summaries need jieba); known: " + known);
  }
  return it->second;
}

const char* longbench_metric_name(LongBenchMetric m) {
  switch (m) {
    case LongBenchMetric::QaF1: return "qa_f1";
    case LongBenchMetric::RougeL: return "rouge_l";
    case LongBenchMetric::Classification: return "classification";
    case LongBenchMetric::Retrieval: return "retrieval";
    case LongBenchMetric::Count: return "count";
    case LongBenchMetric::CodeSim: return "code_sim";
  }
  return "?";
}

double longbench_score(const std::string& dataset, std::string_view prediction_in, const std::vector<std::string>& golds,
                       const std::vector<std::string>& all_classes) {
  const LongBenchMetric metric = longbench_metric(dataset);
  std::string prediction = sanitize_utf8(prediction_in);
  if (dataset == "trec" || dataset == "triviaqa" || dataset == "samsum" || dataset == "lsht") {
    prediction = first_line(prediction);
  }
  double score = 0.0;
  for (const auto& gold : golds) {
    double s = 0.0;
    switch (metric) {
      case LongBenchMetric::QaF1: s = qa_f1(prediction, gold); break;
      case LongBenchMetric::RougeL: s = rouge_l(prediction, gold); break;
      case LongBenchMetric::Classification: s = classification(prediction, gold, all_classes); break;
      case LongBenchMetric::Retrieval: s = retrieval(prediction, gold); break;
      case LongBenchMetric::Count: s = count(prediction, gold); break;
      case LongBenchMetric::CodeSim: s = code_sim(prediction, gold); break;
    }
    score = std::max(score, s);
  }
  return score;
}

// ---------------------------------------------------------------------------------------------
// InfiniteBench

std::string first_int_match(std::string_view prediction) {
  // re.split("[^0-9]", p), first non-empty piece. Non-ASCII bytes are never ASCII digits, so
  // working on bytes gives the same pieces as on code points.
  size_t i = 0;
  while (i < prediction.size() && !(prediction[i] >= '0' && prediction[i] <= '9')) ++i;
  size_t j = i;
  while (j < prediction.size() && prediction[j] >= '0' && prediction[j] <= '9') ++j;
  return std::string(prediction.substr(i, j - i));
}

bool passkey_correct(std::string_view prediction, std::string_view label) {
  return first_int_match(prediction) == label;
}

bool number_string_correct(std::string_view prediction, std::string_view label) {
  return first_int_match(prediction) == label;
}

bool kv_retrieval_correct(std::string_view prediction, std::string_view label) {
  std::string p = sanitize_utf8(prediction);
  for (char& c : p)
    if (c == '\n' || c == ':' || c == '"' || c == '\'' || c == '.' || c == ',' || c == '?' || c == '!' || c == '{' ||
        c == '}')
      c = ' ';
  for (const auto& w : py_split(p))
    if (w == label) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// GSM8K

std::string strip_calculator_annotations(std::string_view s) {
  static const Regex re("<<.*?>>");
  return re.replace_all(sanitize_utf8(s), "");
}

namespace {
std::string gsm8k_normalize(std::string_view s_in) {
  static const Regex r1(","), r2("\\$"), r3("(?s).*#### "), r4("\\.$");
  std::string s = sanitize_utf8(s_in);
  for (const Regex* r : {&r1, &r2, &r3, &r4}) s = r->replace_all(s, "");
  return py_lower(s);
}
}  // namespace

std::string gsm8k_gold(std::string_view answer) { return gsm8k_normalize(answer); }

std::string gsm8k_extract_strict(std::string_view output_in) {
  static const Regex re("#### (\\-?[0-9\\.\\,]+)");
  const std::string output = sanitize_utf8(output_in);
  const auto found = findall_text(re, output, 1);
  return found.empty() ? "[invalid]" : py_strip(found.front());
}

std::string gsm8k_extract_flexible(std::string_view output_in) {
  static const Regex re("(-?[$0-9.,]{2,})|(-?[0-9]+)");
  const std::string output = sanitize_utf8(output_in);
  const auto all = re.find_all(output);
  if (all.empty()) return "[invalid]";
  const auto& m = all.back();
  for (const auto& g : m.groups) {
    if (g.first != PCRE2_UNSET && g.second > g.first) return py_strip(output.substr(g.first, g.second - g.first));
  }
  return "[invalid]";
}

bool gsm8k_match(std::string_view extracted, std::string_view gold_answer) {
  return gsm8k_normalize(extracted) == gsm8k_normalize(gold_answer);
}

// ---------------------------------------------------------------------------------------------
// NIAH

namespace {
std::vector<std::string> alnum_tokens(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : py_lower(s)) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      cur += c;
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}
}  // namespace

double niah_rouge1(std::string_view prediction, std::string_view needle) {
  const auto p = alnum_tokens(prediction), r = alnum_tokens(needle);
  if (p.empty() || r.empty()) return 0.0;
  std::map<std::string, int> cp, cr;
  for (const auto& w : p) ++cp[w];
  for (const auto& w : r) ++cr[w];
  int overlap = 0;
  for (const auto& [w, n] : cp) {
    auto it = cr.find(w);
    if (it != cr.end()) overlap += std::min(n, it->second);
  }
  const double precision = static_cast<double>(overlap) / static_cast<double>(p.size());
  const double recall = static_cast<double>(overlap) / static_cast<double>(r.size());
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

bool contains_normalized(std::string_view prediction, std::string_view answer) {
  const std::string a = normalize_answer(answer);
  if (a.empty()) return false;
  std::string hay = " ", needle = " ";
  hay.append(normalize_answer(prediction)).push_back(' ');
  needle.append(a).push_back(' ');
  return contains(hay, needle);
}

}  // namespace cvq::metrics
