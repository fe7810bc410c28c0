#pragma once
// Every task family, registered once (task_registry.cpp): how a config entry becomes a task, how a
// generated answer is scored, how a run's records aggregate into its score, its headline metric and
// how tables print it. The grid, `eval --task`, `score` and `tables` look families up here, as KV
// methods are looked up in commvq/kv_methods.cpp. Adding a task = its file(s) + one entry in the table.
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tasks/scoring.h"
#include "tasks/task.h"
#include "tasks/task_options.h"

namespace cvq {

struct TaskFamily {
  std::string name;
  bool generates = true;  // generation: each sample's prediction is scored; else a measurement
  int decimals = 2;       // digits of the score in tables
  bool exact = false;     // scores are exact numbers (compared equal or not with published ones)
  std::function<std::unique_ptr<EvalTask>(const TaskOptions&)> make;
  // Generation families: the scorer and the headline metric's name (given a record's gold).
  std::function<SampleScore(const std::string& prediction, const nlohmann::json& gold)> score;
  std::function<std::string(const nlohmann::json& gold)> metric;
  // Measurement families: records -> "metric", "score", "interval", ... (tasks/aggregate.h).
  std::function<void(const std::vector<nlohmann::json>& records, nlohmann::json& out)> aggregate;
};

const std::vector<TaskFamily>& task_families();
const TaskFamily* find_task_family(const std::string& name);  // nullptr when unknown
const TaskFamily& task_family(const std::string& name);       // throws Error listing the known names
std::vector<std::string> task_family_names(bool generating_only = false);

}  // namespace cvq
