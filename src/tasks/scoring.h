#pragma once
// One prediction scored against the gold a task stored in its record, by task family — shared by
// the grid (at run time) and `commvq-bench score` (re-scoring saved predictions).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cvq {

struct SampleScore {
  double score = 0.0;                                    // in [0, 1]
  nlohmann::json extra = nlohmann::json::object();       // secondary metrics, also in [0, 1]
};

// family: passkey | number_string | kv_retrieval  gold: "label" or ["label", ...] (first is used)
//         niah                                     gold: {"needle": text, "answer": text}
//         gsm8k                                    gold: the reference answer (text with "#### N")
//         longbench                                gold: {"dataset", "answers": [...], "all_classes": [...]}
// Throws Error for an unknown family or a malformed gold.
SampleScore score_sample(const std::string& family, const std::string& prediction, const nlohmann::json& gold);
std::vector<std::string> scoring_families();
// Name of the headline metric of a family ("accuracy", "rouge1_f", "strict_match", ...).
std::string family_metric(const std::string& family, const nlohmann::json& gold = nullptr);

}  // namespace cvq
