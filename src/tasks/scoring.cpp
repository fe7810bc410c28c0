#include "tasks/scoring.h"

#include "core/error.h"
#include "tasks/metrics.h"

namespace cvq {
namespace {

std::string first_label(const nlohmann::json& gold, const std::string& family) {
  if (gold.is_string()) return gold.get<std::string>();
  if (gold.is_number_integer()) return std::to_string(gold.get<int64_t>());
  if (gold.is_array() && !gold.empty()) return first_label(gold.front(), family);
  throw Error(family + ": the gold answer must be a string or a non-empty list (got " + gold.dump() + ")");
}

std::vector<std::string> string_list(const nlohmann::json& j, const std::string& what) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (j.is_string()) return {j.get<std::string>()};
  if (!j.is_array()) throw Error("longbench: '" + what + "' must be a list of strings");
  for (const auto& x : j) {
    if (!x.is_string()) throw Error("longbench: '" + what + "' must be a list of strings");
    out.push_back(x.get<std::string>());
  }
  return out;
}

}  // namespace

std::vector<std::string> scoring_families() {
  return {"passkey", "number_string", "kv_retrieval", "niah", "gsm8k", "longbench"};
}

std::string family_metric(const std::string& family, const nlohmann::json& gold) {
  if (family == "passkey" || family == "number_string" || family == "kv_retrieval") return "accuracy";
  if (family == "niah") return "rouge1_f";
  if (family == "gsm8k") return "strict_match";
  if (family == "longbench") {
    if (gold.is_object() && gold.contains("dataset"))
      return metrics::longbench_metric_name(metrics::longbench_metric(gold["dataset"].get<std::string>()));
    return "longbench";
  }
  return "score";
}

SampleScore score_sample(const std::string& family, const std::string& prediction, const nlohmann::json& gold) {
  SampleScore s;
  if (family == "passkey") {
    s.score = metrics::passkey_correct(prediction, first_label(gold, family)) ? 1.0 : 0.0;
  } else if (family == "number_string") {
    s.score = metrics::number_string_correct(prediction, first_label(gold, family)) ? 1.0 : 0.0;
  } else if (family == "kv_retrieval") {
    s.score = metrics::kv_retrieval_correct(prediction, first_label(gold, family)) ? 1.0 : 0.0;
  } else if (family == "niah") {
    if (!gold.is_object() || !gold.contains("needle")) throw Error("niah: the gold must be {\"needle\", \"answer\"}");
    const std::string needle = gold["needle"].get<std::string>();
    const std::string answer = gold.value("answer", needle);
    s.score = metrics::niah_rouge1(prediction, needle);
    s.extra["contains"] = metrics::contains_normalized(prediction, answer) ? 1.0 : 0.0;
  } else if (family == "gsm8k") {
    const std::string ref = first_label(gold, family);
    const std::string strict = metrics::gsm8k_extract_strict(prediction);
    const std::string flexible = metrics::gsm8k_extract_flexible(prediction);
    s.score = metrics::gsm8k_match(strict, ref) ? 1.0 : 0.0;
    s.extra["flexible_extract"] = metrics::gsm8k_match(flexible, ref) ? 1.0 : 0.0;
  } else if (family == "longbench") {
    if (!gold.is_object() || !gold.contains("dataset") || !gold.contains("answers")) {
      throw Error("longbench: the gold must be {\"dataset\", \"answers\", \"all_classes\"}");
    }
    s.score = metrics::longbench_score(gold["dataset"].get<std::string>(), prediction,
                                       string_list(gold["answers"], "answers"),
                                       string_list(gold.value("all_classes", nlohmann::json()), "all_classes"));
  } else {
    std::string known;
    for (const auto& f : scoring_families()) known += (known.empty() ? "" : ", ") + f;
    throw Error("no scorer for task family '" + family + "' (known: " + known + ")");
  }
  return s;
}

}  // namespace cvq
