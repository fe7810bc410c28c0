// `bench grid`: what one prefill for every method and batched decoding save on a real grid. The same
// config slice runs three times into fresh folders, timed: the first method alone, every method
// with the shared prefill and batched decode (the default), and every method on its own prefill
// (eval --own-prefill). Prints the wall-time ratios against the first method alone and checks that
// the two all-method runs wrote the same records.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <unistd.h>

#include "cli/commands/common.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/experiment_config.h"
#include "eval/grid_runner.h"
#include "eval/results_store.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

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

void register_bench_grid(CLI::App& bench) {
  struct Opts : CommonOptions {
    std::string config;
    std::vector<std::string> tasks;
    int64_t limit = 4;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand(
      "grid",
      "grid wall time: every method with one shared prefill + batched decode, and each on its own, vs the "
      "first method alone (same run)");
  add_common_options(*cmd, *o);
  cmd->add_option("--config", o->config, "experiment config (its methods; the first is the baseline)")->required();
  cmd->add_option("--tasks", o->tasks, "only these tasks (entry or instance names)")->delimiter(',');
  cmd->add_option("--limit", o->limit, "samples per task")->check(CLI::PositiveNumber);
  cmd->callback([o, cmd] {
    apply_common_options(*o);
    const ExperimentConfig cfg = ExperimentConfig::load(o->config);
    const std::string model_path = resolve_model_path(o->model_path.empty() ? cfg.model : o->model_path);
    auto model = LlamaModel::load(model_path);
    if (!cfg.matmul.empty() && cmd->count("--matmul") == 0) model->set_matmul_mode(parse_matmul_mode(cfg.matmul));
    const fs::path root = fs::temp_directory_path() / ("commvq-bench-grid-" + std::to_string(::getpid()));
    struct Variant {
      const char* name;
      bool all_methods, shared;
      double seconds = 0.0;
      int errors = 0;
    };
    std::vector<Variant> variants = {
        {"first method alone", false, true}, {"all, shared prefill", true, true}, {"all, own prefills", true, false}};
    for (Variant& v : variants) {
      ExperimentConfig c = cfg;
      if (!v.all_methods) c.methods.resize(1);
      GridOptions g;
      g.out_dir = (root / (v.shared ? (v.all_methods ? "shared" : "first") : "own")).string();
      g.limit = o->limit;
      g.only_tasks = o->tasks;
      g.shared_prefill = v.shared;
      const auto t0 = std::chrono::steady_clock::now();
      const GridResult r = run_grid(*model, model_path, c, g);
      v.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      v.errors = r.n_errors + r.n_missing;
    }
    bool same = true;
    for (const auto& task_dir : fs::directory_iterator(root / "shared" / "runs")) {
      for (const auto& m : fs::directory_iterator(task_dir.path())) {
        const fs::path own = root / "own" / "runs" / task_dir.path().filename() / m.path().filename();
        if (comparable_records(m.path().string()) != comparable_records(own.string())) {
          same = false;
          std::fprintf(stderr, "records differ: %s\n", m.path().string().c_str());
        }
      }
    }
    std::error_code ec;
    fs::remove_all(root, ec);
    std::printf("grid wall time, %s, %zu methods, %lld samples per task, %d threads\n", cfg.name.c_str(),
                cfg.methods.size(), static_cast<long long>(o->limit), ThreadPool::global().size());
    std::printf("%-22s %10s %16s\n", "run", "seconds", "vs first alone");
    nlohmann::json runs = nlohmann::json::array();
    for (const Variant& v : variants) {
      std::printf("%-22s %10.1f %15.2fx%s\n", v.name, v.seconds, v.seconds / variants[0].seconds,
                  v.errors ? "  (runs failed or missing)" : "");
      runs.push_back({{"run", v.name},
                      {"seconds", v.seconds},
                      {"ratio", v.seconds / variants[0].seconds},
                      {"failed_or_missing", v.errors}});
    }
    std::printf("shared-prefill records equal own-prefill records: %s\n", same ? "yes" : "NO");
    write_json(o->json_path, {{"config", o->config},
                              {"model", model_path},
                              {"methods", cfg.methods.size()},
                              {"limit", o->limit},
                              {"threads", ThreadPool::global().size()},
                              {"runs", runs},
                              {"records_equal", same}});
    if (!same) throw Error("shared-prefill records differ from own-prefill records");
  });
}

}  // namespace cvq
