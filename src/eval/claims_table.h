#pragma once
// The paper's claims beside ours: for every task group that names a paper entry and has per-sample
// scores, a row per method with
//   our score, its sample count and 95% interval;
//   our paired difference from the baseline (the experiment's first method) and its 95% interval;
//   the paper's score and the paper's difference from its baseline.
// A group of several tasks (LongBench) scores the unweighted mean of its tasks' means, as the paper's
// average does; a method missing any task of the group gets no average.
// Intervals: one task — the run's own interval for the score (Wilson for 0/1 scores, t otherwise;
// tasks/aggregate.h) and mean ± t·s/√n of the per-sample differences; several tasks — the mean of
// independent task means, ± 1.96·√(Σ s_i²/n_i)/T, for both.
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/table_builders.h"

namespace cvq {

// The records a run counts (what its summary was aggregated from), by (instance, method label).
using RecordsOf = std::function<std::vector<nlohmann::json>(const std::string& instance, const std::string& method)>;

std::vector<Table> claims_tables(const TableInputs& in, const RecordsOf& records_of);

}  // namespace cvq
