#include "bench/grid_speed.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "eval/experiment_config.h"
#include "eval/grid_runner.h"
#include "eval/results_store.h"
#include "model/llama_model.h"

namespace cvq {
namespace {

namespace fs = std::filesystem;

// Records without what may differ between equal runs (timings, how the prefill was made).
std::vector<nlohmann::json> comparable_records(const std::string& dir) {
  std::vector<nlohmann::json> out = read_run_records(dir, false);
  for (auto& r : out) {
    r.erase("timing");
    r.erase("prefill");
    r.erase("prefill_group");
  }
  return out;
}

}  // namespace

GridSpeed measure_grid_speed(const LlamaModel& model, const std::string& model_path, const ExperimentConfig& cfg,
                             int64_t limit, const std::vector<std::string>& only_tasks, bool with_own) {
  const fs::path root = fs::temp_directory_path() / ("commvq-bench-grid-" + std::to_string(::getpid()));
  struct Variant {
    const char* name;
    bool all_methods, shared;
  };
  const Variant variants[] = {
      {"first method alone", false, true}, {"all, shared prefill", true, true}, {"all, own prefills", true, false}};
  GridSpeed out;
  for (const Variant& v : variants) {
    if (!v.shared && !with_own) continue;
    ExperimentConfig c = cfg;
    if (!v.all_methods) c.methods.resize(1);
    GridOptions g;
    g.out_dir = (root / (v.shared ? (v.all_methods ? "shared" : "first") : "own")).string();
    g.limit = limit;
    g.only_tasks = only_tasks;
    g.shared_prefill = v.shared;
    const auto t0 = std::chrono::steady_clock::now();
    const GridResult r = run_grid(model, model_path, c, g);
    out.runs.push_back({v.name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                        r.n_errors + r.n_missing});
  }
  out.compared = with_own;
  if (with_own) {
    for (const auto& task_dir : fs::directory_iterator(root / "shared" / "runs")) {
      for (const auto& m : fs::directory_iterator(task_dir.path())) {
        const fs::path own = root / "own" / "runs" / task_dir.path().filename() / m.path().filename();
        if (comparable_records(m.path().string()) != comparable_records(own.string()))
          out.differing.push_back(m.path().string());
      }
    }
  }
  std::error_code ec;
  fs::remove_all(root, ec);
  return out;
}

}  // namespace cvq
