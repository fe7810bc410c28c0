#pragma once
// What a run's results were made from, by content: the harness version, the task's options, the KV
// spec, and the SHA-256 of every file the run reads — the model, the KV method's files (codebook=,
// calib=) and the task's data files (digests cached by size + mtime, core/file_hash_cache.h).
// Results are resumed only into a folder made from the same inputs; otherwise the grid stops with
// one message naming the file (or setting) that changed, or, with --new-run, starts beside it.
//
// run.json "identity":
//   {"harness": "...", "task": {task.identity()}, "kv": "commvq:bits=2,codebook=<file>",
//    "inputs": [{"role": "model" | "codebook" | "calib" | "data", "path": "...", "bytes": N, "sha256": "..."}]}
// Paths are kept for the reader; files are compared by role and file name, by digest only — moving a
// file elsewhere (another data folder, another codebook path) does not change the identity.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cvq {

struct RunInput {
  std::string role;  // model, codebook, calib, data
  std::string path;
};

// The files a KV spec reads (its file-valued options, e.g. codebook=PATH) as inputs.
std::vector<RunInput> kv_spec_inputs(const std::string& kv_spec);
// The spec with each file-valued option's path replaced by "<file>" (the file is in the inputs).
std::string kv_spec_without_paths(const std::string& kv_spec);

// One input's entry: role, path, bytes and sha256 (cached).
nlohmann::json input_entry(const RunInput& in);
nlohmann::json run_identity(const std::string& harness, const nlohmann::json& task_identity, const std::string& kv_spec,
                            const std::vector<nlohmann::json>& input_entries);

// Empty when results made under `before` may be resumed under `now`; otherwise what changed, as one
// clause naming the file ("results/codebooks/x.safetensors (codebook) has changed: sha256 1a2b… then,
// 3c4d… now") or the setting ("task option chunk differs: 32 then, 48 now").
std::string identity_change(const nlohmann::json& before, const nlohmann::json& now);

// For a run folder about to be resumed: "" when it holds no records or was made from the same
// inputs, else "<dir>/run.json: these results were made from other inputs: <change>".
std::string resume_conflict(const std::string& run_dir, const nlohmann::json& identity);

// --new-run: the first of <out>-2, <out>-3, ... that does not exist yet.
std::string next_run_dir(const std::string& out_dir);

}  // namespace cvq
