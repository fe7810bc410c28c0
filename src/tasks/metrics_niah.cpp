// Needle-in-a-haystack scores: ROUGE-1 F of alphanumeric tokens, and answer containment.
#include "tasks/metrics.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "tasks/py_text.h"

namespace cvq::metrics {

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
