// InfiniteBench's compute_scores.py (OpenBMB/InfiniteBench): passkey, number_string, kv_retrieval.
#include "tasks/metrics.h"

#include "core/error.h"
#include "tasks/py_text.h"

namespace cvq::metrics {

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

}  // namespace cvq::metrics
