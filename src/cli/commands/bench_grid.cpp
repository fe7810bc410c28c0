// `bench grid`: grid wall time with one shared prefill + batched decode and with own prefills,
// against the first method alone (bench/grid_speed.h).
#include <cstdio>

#include "bench/grid_speed.h"
#include "cli/commands/common.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/experiment_config.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

namespace cvq {

void register_bench_grid(CLI::App& bench) {
  struct Opts : CommonOptions {
    std::string config;
    std::vector<std::string> tasks;
    int64_t limit = 4;
    bool no_own = false;
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
  cmd->add_flag("--no-own", o->no_own,
                "skip the own-prefill run (the slowest) and so the check that its records equal the shared run's");
  cmd->callback([o, cmd] {
    apply_common_options(*o);
    const ExperimentConfig cfg = ExperimentConfig::load(o->config);
    const std::string model_path = resolve_model_path(o->model_path.empty() ? cfg.model : o->model_path);
    auto model = LlamaModel::load(model_path);
    if (!cfg.matmul.empty() && cmd->count("--matmul") == 0) model->set_matmul_mode(parse_matmul_mode(cfg.matmul));
    const GridSpeed speed = measure_grid_speed(*model, model_path, cfg, o->limit, o->tasks, !o->no_own);
    for (const auto& d : speed.differing) std::fprintf(stderr, "records differ: %s\n", d.c_str());
    const bool same = speed.differing.empty();
    std::printf("grid wall time, %s, %zu methods, %lld samples per task, %d threads\n", cfg.name.c_str(),
                cfg.methods.size(), static_cast<long long>(o->limit), ThreadPool::global().size());
    std::printf("%-22s %10s %16s\n", "run", "seconds", "vs first alone");
    nlohmann::json runs = nlohmann::json::array();
    for (const GridSpeedRun& v : speed.runs) {
      std::printf("%-22s %10.1f %15.2fx%s\n", v.name.c_str(), v.seconds, v.seconds / speed.runs[0].seconds,
                  v.failed_or_missing ? "  (runs failed or missing)" : "");
      runs.push_back({{"run", v.name},
                      {"seconds", v.seconds},
                      {"ratio", v.seconds / speed.runs[0].seconds},
                      {"failed_or_missing", v.failed_or_missing}});
    }
    if (speed.compared)
      std::printf("shared-prefill records equal own-prefill records: %s\n", same ? "yes" : "NO");
    else
      std::printf("shared-prefill records not compared (--no-own)\n");
    write_json(o->json_path, {{"config", o->config},
                              {"model", model_path},
                              {"methods", cfg.methods.size()},
                              {"limit", o->limit},
                              {"threads", ThreadPool::global().size()},
                              {"runs", runs},
                              {"records_equal", speed.compared ? nlohmann::json(same) : nlohmann::json(nullptr)}});
    if (!same) throw Error("shared-prefill records differ from own-prefill records");
  });
}

}  // namespace cvq
