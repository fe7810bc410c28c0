#pragma once
// Task-level numbers from per-sample records — a pure function of the records, so `tables` can merge
// shards and re-aggregate without the model.
//   generation families: score = round(100 · mean(score), 2) (LongBench / InfiniteBench), secondary
//     metrics from "extra" likewise; "breakdown" by meta.group (depth, length×depth cells);
//   perplexity: exp(Σ nll / Σ n) over the windows; agreement: 100 · Σ agree / Σ n and mean KL;
//   memory: bits/element at the longest length, and per length.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cvq {

// {"metric", "score", "higher_is_better", "n", "extra": {...}, "breakdown": {...}}
nlohmann::json aggregate_records(const std::string& family, const std::vector<nlohmann::json>& records);
double round2(double x);  // Python's round(x, 2) for the values it meets (half-even on the decimal string)

}  // namespace cvq
