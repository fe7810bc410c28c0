#include "eval/rescore.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/json_file.h"
#include "eval/results_store.h"
#include "tasks/aggregate.h"
#include "tasks/metrics.h"
#include "tasks/scoring.h"
#include "tasks/task_registry.h"

namespace cvq {

namespace {

const nlohmann::json* field(const nlohmann::json& j, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    auto it = j.find(n);
    if (it != j.end()) return &*it;
  }
  return nullptr;
}

}  // namespace

RescoreResult rescore_file(const std::string& task, const std::string& path, int keep_failures) {
  if (!std::filesystem::exists(path)) fail_file(path, "predictions file not found");
  RescoreResult out;
  std::string family = task, dataset;
  if (task == "auto") {
    const std::string run_json = (std::filesystem::path(path).parent_path() / "run.json").string();
    if (!std::filesystem::exists(run_json))
      fail_file(path, "--task auto needs the run.json of an `eval --config` run folder beside it");
    family = read_json_file(run_json).value("family", "");
  } else if (task.rfind("longbench:", 0) == 0) {
    family = "longbench";
    dataset = task.substr(10);
  } else {
    const auto fams = task_family_names(true);
    if (std::find(fams.begin(), fams.end(), task) == fams.end()) {
      (void)metrics::longbench_metric(task);  // throws for names that are neither
      family = "longbench";
      dataset = task;
    }
  }
  out.family = family;
  out.dataset = dataset;
  std::ifstream in(path);
  std::string line;
  size_t lineno = 0;
  std::vector<nlohmann::json> records;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail_file(path, "line " + std::to_string(lineno) + ": not a JSON object");
    const nlohmann::json* pred = field(j, {"prediction", "pred", "output", "response"});
    if (!pred || !pred->is_string())
      fail_file(path, "line " + std::to_string(lineno) + ": no prediction (fields prediction / pred / output)");
    nlohmann::json gold;
    if (const auto* g = field(j, {"gold"}); g && (family != "longbench" || g->is_object())) {
      gold = *g;
    } else if (family == "longbench") {
      const nlohmann::json* answers = field(j, {"answers", "ground_truth"});
      if (!answers) fail_file(path, "line " + std::to_string(lineno) + ": no answers");
      if (dataset.empty()) fail_file(path, "LongBench predictions need the dataset: --task longbench:<dataset>");
      gold = {{"dataset", dataset},
              {"answers", answers->is_string() ? nlohmann::json::array({*answers}) : *answers},
              {"all_classes", j.value("all_classes", nlohmann::json())}};
    } else {
      const nlohmann::json* given = field(j, {"ground_truth", "answer", "answers", "label"});
      if (!given) fail_file(path, "line " + std::to_string(lineno) + ": no gold answer (ground_truth / answer / gold)");
      gold = *given;
    }
    SampleScore s;
    try {
      s = score_sample(family, pred->get<std::string>(), gold);
    } catch (const Error& e) {
      fail_file(path, "line " + std::to_string(lineno) + ": " + e.what());
    }
    nlohmann::json rec = {
        {"id", j.contains("id") ? j["id"] : nlohmann::json(lineno)}, {"score", s.score}, {"gold", gold}};
    if (!s.extra.empty()) rec["extra"] = s.extra;
    if (j.contains("meta")) rec["meta"] = j["meta"];
    if (s.score < 1.0 && static_cast<int>(out.failures.size()) < keep_failures)
      out.failures.push_back({{"line", lineno}, {"prediction", *pred}, {"gold", gold}, {"score", s.score}});
    records.push_back(std::move(rec));
  }
  if (records.empty()) fail_file(path, "no predictions");
  out.aggregate = aggregate_records(family, records);
  return out;
}

}  // namespace cvq
