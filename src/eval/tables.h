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
  std::string paper_path;     // default: <checkout>/experiments/paper.json (skipped when absent)
  std::string reference_dir;  // another results folder (e.g. the committed run): a side-by-side table
  bool plots = true;
  std::string python;  // interpreter for plot.py; empty: the first of plot_interpreters() with matplotlib
};

struct TablesResult {
  nlohmann::json summary;          // merged run summaries
  std::vector<std::string> files;  // written files
  std::string plot_note;           // why plots were not made, if they were not
  std::string python;              // the interpreter that made the plots
  std::string reference_md;        // the side-by-side table (with reference_dir)
  int reference_cells = 0, reference_within = 0, reference_outside = 0;
};

// Where `tables` looks for python with matplotlib, in order: $COMMVQ_PYTHON, the Debian interpreter
// that scripts/setup.sh gives python3-matplotlib (/usr/bin/python3), then `python3` on PATH.
std::vector<std::string> plot_interpreters();

// Merged summaries of every run under results_dir/runs (no model needed).
nlohmann::json merge_results(const std::string& results_dir);
TablesResult make_tables(const TablesOptions& opt);

// Formatting helpers (exposed for tests).
std::string format_score(const nlohmann::json& run);  // "93.33", "12.345", "missing", "partial 3/10: 50.00"

}  // namespace cvq
