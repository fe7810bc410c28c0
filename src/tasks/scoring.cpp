#include "tasks/scoring.h"

#include "core/error.h"
#include "tasks/metrics.h"
#include "tasks/task_registry.h"

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

SampleScore correct(bool ok) {
  SampleScore s;
  s.score = ok ? 1.0 : 0.0;
  return s;
}

}  // namespace

SampleScore score_passkey(const std::string& prediction, const nlohmann::json& gold) {
  return correct(metrics::passkey_correct(prediction, first_label(gold, "passkey")));
}

SampleScore score_number_string(const std::string& prediction, const nlohmann::json& gold) {
  return correct(metrics::number_string_correct(prediction, first_label(gold, "number_string")));
}

SampleScore score_kv_retrieval(const std::string& prediction, const nlohmann::json& gold) {
  return correct(metrics::kv_retrieval_correct(prediction, first_label(gold, "kv_retrieval")));
}

SampleScore score_niah(const std::string& prediction, const nlohmann::json& gold) {
  if (!gold.is_object() || !gold.contains("needle")) throw Error("niah: the gold must be {\"needle\", \"answer\"}");
  const std::string needle = gold["needle"].get<std::string>();
  const std::string answer = gold.value("answer", needle);
  SampleScore s;
  s.score = metrics::niah_rouge1(prediction, needle);
  s.extra["contains"] = metrics::contains_normalized(prediction, answer) ? 1.0 : 0.0;
  return s;
}

SampleScore score_gsm8k(const std::string& prediction, const nlohmann::json& gold) {
  const std::string ref = first_label(gold, "gsm8k");
  SampleScore s = correct(metrics::gsm8k_match(metrics::gsm8k_extract_strict(prediction), ref));
  s.extra["flexible_extract"] = metrics::gsm8k_match(metrics::gsm8k_extract_flexible(prediction), ref) ? 1.0 : 0.0;
  return s;
}

SampleScore score_longbench(const std::string& prediction, const nlohmann::json& gold) {
  if (!gold.is_object() || !gold.contains("dataset") || !gold.contains("answers")) {
    throw Error("longbench: the gold must be {\"dataset\", \"answers\", \"all_classes\"}");
  }
  SampleScore s;
  s.score =
      metrics::longbench_score(gold["dataset"].get<std::string>(), prediction, string_list(gold["answers"], "answers"),
                               string_list(gold.value("all_classes", nlohmann::json()), "all_classes"));
  return s;
}

std::string longbench_metric_of(const nlohmann::json& gold) {
  if (gold.is_object() && gold.contains("dataset"))
    return metrics::longbench_metric_name(metrics::longbench_metric(gold["dataset"].get<std::string>()));
  return "longbench";
}

SampleScore score_sample(const std::string& family, const std::string& prediction, const nlohmann::json& gold) {
  const TaskFamily* f = find_task_family(family);
  if (!f || !f->score) {
    std::string known;
    for (const auto& n : task_family_names(true)) known += (known.empty() ? "" : ", ") + n;
    throw Error("no scorer for task family '" + family + "' (known: " + known + ")");
  }
  return f->score(prediction, gold);
}

}  // namespace cvq
