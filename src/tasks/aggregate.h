#pragma once
// Task-level numbers from per-sample records — a pure function of the records, so `tables` can merge
// shards and re-aggregate without the model.
//   generation families: score = round(100 · mean(score), 2) (LongBench / InfiniteBench), secondary
//     metrics from "extra" likewise; "breakdown" by meta.group (depth, length×depth cells);
//   perplexity: exp(Σ nll / Σ n) over the windows; agreement: 100 · Σ agree / Σ n and mean KL;
//   memory: bits/element at the longest length, and per length.
// "interval": the score's 95% sampling interval [lo, hi] over the samples (what another draw of as
// many samples could give): Wilson for 0/1 scores, mean ± t·s/√n for graded ones (clipped to
// [0, 100]), exp(mean ± t·s/√W) of the per-window mean NLL for perplexity, ± t·s/√W of the
// per-window rate for agreement; null with fewer than two samples (memory is exact: none).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cvq {

// {"metric", "score", "higher_is_better", "n", "extra": {...}, "breakdown": {...}}, by the family's
// aggregator (tasks/task_registry.h); generation families use aggregate_scores.
nlohmann::json aggregate_records(const std::string& family, const std::vector<nlohmann::json>& records);

// The aggregators the registry names. Each fills `out` (which holds "n") from non-empty records.
void aggregate_scores(const std::vector<nlohmann::json>& records, const std::string& metric, nlohmann::json& out);
void aggregate_perplexity(const std::vector<nlohmann::json>& records, nlohmann::json& out);
void aggregate_agreement(const std::vector<nlohmann::json>& records, nlohmann::json& out);
void aggregate_memory(const std::vector<nlohmann::json>& records, nlohmann::json& out);
double round2(double x);
// Two-sided 95% quantile of Student's t with df degrees of freedom (1.96 from df > 30).
double t_quantile_95(int64_t df);  // Python's round(x, 2) for the values it meets (half-even on the decimal string)

}  // namespace cvq
