#pragma once
// How one prediction of a generation task is scored against the gold its record stores, per task
// family. The registry (tasks/task_registry.h) names these functions once; the grid (at run time)
// and `commvq-bench score` (re-scoring saved predictions) both reach them through it.
#include <nlohmann/json.hpp>
#include <string>

namespace cvq {

struct SampleScore {
  double score = 0.0;                               // in [0, 1]
  nlohmann::json extra = nlohmann::json::object();  // secondary metrics, also in [0, 1]
};

// gold: "label" or ["label", ...] (the first is used). InfiniteBench's rules (tasks/metrics.h).
SampleScore score_passkey(const std::string& prediction, const nlohmann::json& gold);
SampleScore score_number_string(const std::string& prediction, const nlohmann::json& gold);
SampleScore score_kv_retrieval(const std::string& prediction, const nlohmann::json& gold);
// gold: {"needle": text, "answer": text}. ROUGE-1 F against the needle; extra "contains".
SampleScore score_niah(const std::string& prediction, const nlohmann::json& gold);
// gold: the reference answer (text with "#### N"). Strict match; extra "flexible_extract".
SampleScore score_gsm8k(const std::string& prediction, const nlohmann::json& gold);
// gold: {"dataset", "answers": [...], "all_classes": [...]}: the dataset's official metric.
SampleScore score_longbench(const std::string& prediction, const nlohmann::json& gold);
// The headline metric of a LongBench record ("qa_f1_score", ...; "longbench" without a dataset).
std::string longbench_metric_of(const nlohmann::json& gold);

// The family's scorer (task_family(family).score); throws Error for a family without one.
SampleScore score_sample(const std::string& family, const std::string& prediction, const nlohmann::json& gold);

}  // namespace cvq
