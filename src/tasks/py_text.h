#pragma once
// Python str semantics for the benchmark scorers (tasks/metrics.h): UTF-8 decoding with U+FFFD for
// invalid bytes, str.lower() / split() / strip() on code points, and `re` with Unicode \d \w \b
// (PCRE2 with UCP). The scorers are ports of Python scripts; these helpers are what makes a port
// give the script's numbers on any text.
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct pcre2_real_code_8;

namespace cvq::metrics {

std::string sanitize_utf8(std::string_view s);   // invalid sequences -> U+FFFD
std::u32string utf8_to_u32(std::string_view s);  // sanitizes first
std::string u32_to_utf8(std::u32string_view s);
std::string py_lower(std::string_view s);                                     // str.lower()
std::vector<std::string> py_split(std::string_view s);                        // str.split() (any Unicode whitespace)
std::vector<std::string> split_on(std::string_view s, std::string_view sep);  // str.split(sep)
std::string py_strip(std::string_view s);                                     // str.strip()
std::string first_line(std::string_view pred);                                // pred.lstrip("\n").split("\n")[0]
inline bool contains(std::string_view hay, std::string_view needle) {
  return hay.find(needle) != std::string_view::npos;
}

// A compiled pattern with Python-like Unicode semantics. Inputs must be valid UTF-8 (callers
// sanitize).
class Regex {
 public:
  static constexpr size_t kUnset = ~size_t{0};  // a group that did not take part
  explicit Regex(const char* pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  struct Match {
    size_t begin, end;                              // whole match
    std::vector<std::pair<size_t, size_t>> groups;  // (kUnset, kUnset) when a group did not take part
  };
  std::vector<Match> find_all(std::string_view s) const;                     // re.finditer
  std::string replace_all(std::string_view s, std::string_view repl) const;  // re.sub with a literal

 private:
  pcre2_real_code_8* code_ = nullptr;
};

// re.findall(pattern, s) for group 0 (the match) or one group ("" where it did not take part).
std::vector<std::string> findall_text(const Regex& re, std::string_view s, int group);

}  // namespace cvq::metrics
