// `plan`: how a grid splits into Slurm array shards — the samples and (sample x method) runs each
// shard gets (shard i takes sample indices i mod n of every task, as `eval --shard i/n` does), the
// prefills each makes (one per sample for generation tasks, shared by the methods; one per sample
// and method otherwise), and the sbatch lines that submit it (scripts/slurm/).
#include <algorithm>
#include <cstdio>

#include "cli/commands/common.h"
#include "core/error.h"
#include "eval/experiment_config.h"
#include "tasks/task.h"

namespace cvq {

void register_plan(CLI::App& app) {
  struct Opts {
    std::string config, out = "out/grid";
    int shards = 4, cpus = 2;
    int64_t limit = -1;
    std::string json_path;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("plan", "split a grid into Slurm array shards: work per shard and the sbatch lines");
  cmd->add_option("--config", o->config, "experiment config")->required();
  cmd->add_option("--shards", o->shards, "number of array elements")->check(CLI::Range(1, 100000));
  cmd->add_option("--out", o->out, "results folder the shards share");
  cmd->add_option("--cpus", o->cpus, "CPUs per shard (threads)")->check(CLI::Range(1, 1024));
  cmd->add_option("--limit", o->limit, "at most this many samples per task")->check(CLI::NonNegativeNumber);
  cmd->add_option("--json", o->json_path, "also write the plan as JSON");
  cmd->callback([o] {
    const ExperimentConfig cfg = ExperimentConfig::load(o->config);
    const int n = o->shards;
    const int64_t n_methods = static_cast<int64_t>(cfg.methods.size());
    std::vector<int64_t> samples(n, 0), runs(n, 0), prefills(n, 0);
    nlohmann::json tasks = nlohmann::json::array();
    for (const auto& t : cfg.tasks) {
      auto task = make_eval_task(t);
      int64_t size = task->size();
      if (t.limit >= 0) size = std::min(size, t.limit);
      if (o->limit >= 0) size = std::min(size, o->limit);
      const bool generation = dynamic_cast<const GenerationTask*>(task.get()) != nullptr;
      for (int s = 0; s < n; ++s) {
        const int64_t mine = size > s ? (size - s + n - 1) / n : 0;
        samples[s] += mine;
        runs[s] += mine * n_methods;
        prefills[s] += generation ? mine : mine * n_methods;
      }
      tasks.push_back({{"task", t.name}, {"samples", size}, {"shared_prefill", generation}});
    }
    std::printf("%s: %zu task instance(s), %lld method(s), %d shard(s)\n", cfg.path.c_str(), cfg.tasks.size(),
                static_cast<long long>(n_methods), n);
    std::printf("%8s %10s %16s %10s\n", "shard", "samples", "sample x method", "prefills");
    nlohmann::json shards = nlohmann::json::array();
    for (int s = 0; s < n; ++s) {
      std::printf("%8d %10lld %16lld %10lld\n", s, static_cast<long long>(samples[s]), static_cast<long long>(runs[s]),
                  static_cast<long long>(prefills[s]));
      shards.push_back({{"shard", s}, {"samples", samples[s]}, {"runs", runs[s]}, {"prefills", prefills[s]}});
    }
    const std::string limit = o->limit >= 0 ? " --limit " + std::to_string(o->limit) : "";
    std::printf("\nsubmit (from the repository root):\n");
    std::printf("  jid=$(sbatch --parsable --array=0-%d --cpus-per-task=%d scripts/slurm/grid-array.sbatch %s %s%s)\n",
                n - 1, o->cpus, o->config.c_str(), o->out.c_str(), limit.c_str());
    std::printf("  sbatch --dependency=afterany:$jid scripts/slurm/merge.sbatch %s\n", o->out.c_str());
    std::printf("or: scripts/slurm/submit.sh %s %s %d %d\n", o->config.c_str(), o->out.c_str(), n, o->cpus);
    write_json(o->json_path, {{"config", o->config}, {"shards", shards}, {"tasks", tasks}, {"out", o->out}});
  });
}

}  // namespace cvq
