#pragma once
// `tables --reference DIR`: our runs beside another results folder's (e.g. the committed reference
// run), cell by cell — ours, the reference, the difference, and whether ours lies inside the
// reference cell's 95% sampling interval (tasks/aggregate.h); plus whether the two runs were made from
// the same inputs (run.json identities, eval/run_identity.h), which says why numbers may differ.
#include <nlohmann/json.hpp>
#include <string>

namespace cvq {

struct ReferenceComparison {
  std::string markdown, csv;
  int cells = 0;    // runs with a score on both sides
  int within = 0;   // ours inside the reference's interval (or equal, for exact cells)
  int outside = 0;  // ours outside it
};

// `runs` and `reference_runs`: merge_results() of the two folders (rows follow `runs`' order). The
// per-sample records of both are read to count the samples whose outcome is identical (prediction
// and score, or a window's NLL).
ReferenceComparison compare_with_reference(const nlohmann::json& runs, const std::string& results_dir,
                                           const nlohmann::json& reference_runs, const std::string& reference_dir);

}  // namespace cvq
