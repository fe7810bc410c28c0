// GSM8K as lm-eval-harness scores it (gsm8k.yaml): strict-match and flexible-extract filters, exact_match.
#include "tasks/metrics.h"

#include "core/error.h"
#include "tasks/py_text.h"

namespace cvq::metrics {

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
    if (g.first != Regex::kUnset && g.second > g.first) return py_strip(output.substr(g.first, g.second - g.first));
  }
  return "[invalid]";
}

bool gsm8k_match(std::string_view extracted, std::string_view gold_answer) {
  return gsm8k_normalize(extracted) == gsm8k_normalize(gold_answer);
}

}  // namespace cvq::metrics
