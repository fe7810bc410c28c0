#pragma once
// Runs an experiment grid: for each task instance, sample by sample, every KV method that does not
// have the sample in the results folder yet (resume), this shard's slice only (sample index i belongs
// to shard i mod n), each on an empty cache — together, so generation tasks prefill once and decode
// the methods as one batch (EvalTask::run_samples); appends one record per (sample, method) and
// writes the run summaries atomically.
// A method the build does not register is reported with status "missing" (and one that cannot be
// built, e.g. a codebook file that is not there, "unavailable") instead of stopping the grid; a run
// that fails midway gets status "error" with the message, and the grid goes on.
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/experiment_config.h"

namespace cvq {

class LlamaModel;

struct GridOptions {
  std::string out_dir;
  int64_t limit = -1;                   // at most this many samples per task (the first ones)
  std::vector<std::string> only_tasks;  // instance or entry names; empty: all
  int shard_index = 0, shard_count = 1;
  // When out_dir holds results made from other inputs (eval/run_identity.h): false stops with the
  // message naming the changed file; true runs into the first free <out_dir>-N beside it instead.
  bool new_run = false;
  // Generation tasks: one prefill for all the methods with the same prefill signature and batched
  // decoding (EvalTask::run_samples); false runs each method alone (same records, for checking).
  bool shared_prefill = true;
  // Test hook: after this many new records, stop as a kill would (records written so far stay).
  int64_t stop_after_samples = -1;
};

struct GridResult {
  std::vector<nlohmann::json> runs;  // run summaries
  int n_missing = 0, n_errors = 0;
  bool stopped = false;  // the test hook fired
  std::string out_dir;   // the folder the results went to (another one after --new-run)
};

// "i/n" -> (i, n); errors for anything else.
std::pair<int, int> parse_shard(const std::string& s);
// Harness version: part of every run's identity; bump when prompts or records change.
extern const char* const kEvalHarnessVersion;

GridResult run_grid(const LlamaModel& model, const std::string& model_path, const ExperimentConfig& cfg,
                    const GridOptions& opt);

// A run's summary from its records and its run.json (run_info); status "complete" or "partial".
nlohmann::json summarize_run(const nlohmann::json& run_info, int64_t n_expected,
                             const std::vector<nlohmann::json>& records);
// KV footprint of a run from its records: bits/element at the longest context (projected when the
// method reports it, else measured cache.bytes()).
nlohmann::json kv_footprint_from_records(const std::vector<nlohmann::json>& records, const nlohmann::json& geometry);

int64_t peak_rss_bytes();  // VmHWM of this process
void reset_peak_rss();     // echo 5 > /proc/self/clear_refs (where the kernel allows it)

}  // namespace cvq
