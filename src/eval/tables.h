#pragma once
// `tables`: merge a results folder (all shards of every run), re-aggregate from the per-sample
// records, and write Markdown + CSV tables with the paper's numbers (experiments/paper.json) beside
// ours, a merged summary.json, and PNG plots through scripts/plot.py (python3 + matplotlib).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cvq {

struct TablesOptions {
  std::string results_dir;
  std::string out_dir;
  std::string paper_path;  // default: <checkout>/experiments/paper.json (skipped when absent)
  bool plots = true;
  std::string python = "python3";
};

struct TablesResult {
  nlohmann::json summary;           // merged run summaries
  std::vector<std::string> files;   // written files
  std::string plot_note;            // why plots were not made, if they were not
};

// Merged summaries of every run under results_dir/runs (no model needed).
nlohmann::json merge_results(const std::string& results_dir);
TablesResult make_tables(const TablesOptions& opt);

// Formatting helpers (exposed for tests).
std::string format_score(const nlohmann::json& run);  // "93.33", "12.345", "missing", "partial 3/10: 50.00"

}  // namespace cvq
