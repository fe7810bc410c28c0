#pragma once
// Experiment configs (experiments/*.json): KV methods × task instances (× sweeps), and how to table
// them. Format:
//   { "name": "quick", "description": "...", "model": "" (default model or a known model's name),
//     "matmul": "fp32" | "bf16" (the prefill arithmetic, model/weight_matrix.h; default fp32), "seed": 1234,
//     "vars": {"CODEBOOKS": "codebooks"},             // ${CODEBOOKS} in specs/options; env wins
//     "methods": [ {"label": "fp16", "kv": "fp16"}, "kivi:k=2,v=2", ... ],
//     "tasks": [ {"name": "passkey", "task": "passkey", "sweep": {"context_tokens": [2048, 4096]},
//                 "paper": "infinitebench_passkey", "limit": 10, ...task options...}, ... ],
//     "notes": "..." }
// A task entry with "sweep" expands to one instance per combination, named "<name>-<v1>[-<v2>...]".
// Mistakes (unknown keys, duplicate names, bad types) are errors naming the file and the entry.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tasks/task.h"

namespace cvq {

struct MethodConfig {
  std::string label;  // row name in tables, folder name in results
  std::string kv;     // spec string for make_kv_cache
  std::string note;
};

struct TaskInstanceConfig {
  std::string name;   // unique instance name (folder name in results)
  std::string group;  // the config entry it came from
  std::string
      type;  // passkey | number_string | kv_retrieval | niah | longbench | gsm8k | perplexity | agreement | memory
  nlohmann::json options = nlohmann::json::object();  // task options with sweep values applied
  nlohmann::json sweep = nlohmann::json::object();    // the sweep values of this instance
  std::string paper;                                  // key into experiments/paper.json, optional
  int64_t limit = -1;  // "limit": run at most the first N samples (-1: all); --limit caps it further
  std::string where;   // "<file>: task '<name>'" for error messages
};

struct ExperimentConfig {
  std::string path, name, description, model, notes;
  std::string matmul;  // "", "fp32" or "bf16"
  uint64_t seed = 1234;
  std::vector<MethodConfig> methods;
  std::vector<TaskInstanceConfig> tasks;
  nlohmann::json raw;

  // path: a file, or a name under the installed experiments/ (core/resource_paths.h).
  static ExperimentConfig load(const std::string& path);
  static ExperimentConfig parse(const nlohmann::json& j, const std::string& where);
  std::vector<std::string> groups() const;  // entry names in config order
};

std::vector<std::string> eval_task_types();
// Builds the task (reads its data, checks its options); errors name t.where.
std::unique_ptr<EvalTask> make_eval_task(const TaskInstanceConfig& t);
// A method given on the command line (--kv SPEC or --kv LABEL=SPEC).
MethodConfig method_from_cli(const std::string& arg);
// `eval --task T [--name value ...]`: the one-task config the command line describes, checked like a
// file. Each "--name value" (or "--name=value") sets the task option "name" (dashes become
// underscores: --context-tokens 8192); integers, numbers and true/false are typed, and a value with
// commas ("qasper,trec") sweeps over its items, one instance each.
ExperimentConfig config_from_cli(const std::string& task, const std::vector<std::string>& option_args,
                                 const std::vector<MethodConfig>& methods);
bool is_safe_name(const std::string& s);  // [A-Za-z0-9._+=-]+, usable as a folder name

}  // namespace cvq
