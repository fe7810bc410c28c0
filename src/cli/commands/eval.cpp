// `eval`: run a task with one or more KV-cache methods and print one table; or, with --config, an
// experiment grid (tasks × KV methods × settings) into a resumable results folder. `--task T` other
// than perplexity is a one-task grid built from the command line (config_from_cli), run by the same code.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <tuple>

#include "cli/commands/common.h"
#include "core/error.h"
#include "eval/grid_runner.h"
#include "eval/tables.h"
#include "tasks/data_paths.h"
#ifdef COMMVQ_HAVE_CUDA
#include "gpu/gpu_llama_model.h"
#include "gpu/gpu_perplexity.h"
#include "kernels/cuda/device_memory.h"
#endif
#include "core/text_source.h"
#include "model/llama_model.h"
#include "model/model_paths.h"
#include "tasks/perplexity.h"

namespace cvq {
namespace {

struct GridCall {
  std::string out_dir, shard = "0/1";
  int64_t limit = -1;
  std::vector<std::string> only_tasks;
  bool new_run = false;
  bool own_prefill = false;
  std::string model_path;     // --model ("" = the config's model, else the default)
  bool matmul_given = false;  // --matmul was given: it wins over the config's "matmul"
  std::string json_path;
};

// Runs the grid and prints one line per (task instance, method).
void run_grid_and_print(const ExperimentConfig& cfg, const GridCall& c) {
  GridOptions g;
  std::tie(g.shard_index, g.shard_count) = parse_shard(c.shard);
  g.out_dir = c.out_dir;
  g.limit = c.limit;
  g.only_tasks = c.only_tasks;
  g.new_run = c.new_run;
  g.shared_prefill = !c.own_prefill;
  const std::string model_path = resolve_model_path(c.model_path.empty() ? cfg.model : c.model_path);
  auto model = LlamaModel::load(model_path);
  if (!cfg.matmul.empty() && !c.matmul_given) model->set_matmul_mode(parse_matmul_mode(cfg.matmul));
  const GridResult r = run_grid(*model, model_path, cfg, g);
  std::printf("%-28s %-14s %-10s %10s %6s  %s\n", "task", "method", "status", "score", "n", "metric");
  for (const auto& run : r.runs) {
    std::printf("%-28s %-14s %-10s %10s %6lld  %s\n", run.value("task", "").c_str(), run.value("method", "").c_str(),
                run.value("status", "").c_str(), format_score(run).c_str(),
                static_cast<long long>(run.value("n", int64_t{0})), run.value("metric", "").c_str());
  }
  std::printf("results in %s (make tables: commvq-bench tables --results %s)\n", r.out_dir.c_str(), r.out_dir.c_str());
  if (r.n_missing) std::printf("%d run(s) not made: KV method missing or unavailable (see notes above)\n", r.n_missing);
  write_json(c.json_path, {{"experiment", cfg.name}, {"out", r.out_dir}, {"runs", r.runs}});
  if (r.n_errors) throw Error(std::to_string(r.n_errors) + " run(s) failed; see the messages above");
}

struct EvalOpts : CommonOptions {
  std::string task = "perplexity";
  std::string data;
  std::vector<std::string> kv{"fp16"};
  int ctx = 2048;
  int64_t max_tokens = -1;
  int chunk = 512;
  std::string config, out, shard = "0/1";
  int64_t limit = -1;
  std::vector<std::string> tasks;
  std::string device = "cpu";
  std::string arith = "native";
  bool new_run = false;
  bool own_prefill = false;
};

// eval --task T for a grid task: a one-task grid from the command line, run like a config's
// (records in --out, or in a temporary folder removed afterwards).
void eval_grid_task(const EvalOpts& o, GridCall call, const std::vector<std::string>& extras) {
  std::vector<MethodConfig> methods;
  for (const auto& k : o.kv) methods.push_back(method_from_cli(k));
  const ExperimentConfig cfg = config_from_cli(o.task, extras, methods);
  const bool temporary = o.out.empty();
  if (temporary) {
    call.out_dir =
        (std::filesystem::temp_directory_path() / ("commvq-eval-" + o.task + "-" + std::to_string(::getpid())))
            .string();
    std::filesystem::remove_all(call.out_dir);
  }
  try {
    run_grid_and_print(cfg, call);
  } catch (...) {
    if (temporary) std::filesystem::remove_all(call.out_dir);
    throw;
  }
  if (temporary) {
    std::filesystem::remove_all(call.out_dir);
    std::printf("(records not kept: give --out DIR to keep them)\n");
  }
}

// eval --task perplexity: one table, one row per KV method, on the CPU or the GPU.
void eval_perplexity(const EvalOpts& o, [[maybe_unused]] bool cuda) {
  const std::string data = o.data.empty() ? data_path("text/wikitext-2-raw/wiki.test.raw") : o.data;
  auto model = LlamaModel::load(resolve_model_path(o.model_path));
  const std::string text = read_text_file(data);
  const Tokenizer& tok = model->tokenizer();
  std::vector<int32_t> tokens = tok.encode(text, tok.add_bos_default(), false);
  nlohmann::json runs = nlohmann::json::array();
  std::vector<PerplexityResult> results;
#ifdef COMMVQ_HAVE_CUDA
  std::unique_ptr<gpu::GpuLlamaModel> gpu_model;  // uploaded once, for all specs
#endif
  for (const auto& spec : o.kv) {
    PerplexityOptions po;
    po.ctx = o.ctx;
    po.max_tokens = o.max_tokens;
    po.chunk = o.chunk;
    po.kv_spec = apply_arith(o.arith, *model, spec);
#ifdef COMMVQ_HAVE_CUDA
    if (cuda) {
      if (!gpu_model) gpu_model = gpu::GpuLlamaModel::upload(*model);
      results.push_back(gpu::run_perplexity_gpu(*gpu_model, tokens, po));
    } else {
      results.push_back(run_perplexity(*model, tokens, po));
    }
#else
    results.push_back(run_perplexity(*model, tokens, po));
#endif
    const auto& r = results.back();
    runs.push_back({{"kv", spec},
                    {"perplexity", r.perplexity},
                    {"nll_sum", r.nll_sum},
                    {"n_scored", r.n_scored},
                    {"n_tokens", r.n_tokens},
                    {"windows", r.n_windows},
                    {"kv_bytes_at_ctx", r.kv_bytes_at_ctx},
                    {"seconds", r.seconds}});
#ifdef COMMVQ_HAVE_CUDA
    if (cuda) {  // device memory: weights + cache + activations, through our allocator
      runs.back()["device_peak_bytes"] = cuda::allocator_stats().peak_bytes;
      runs.back()["device_weight_bytes"] = gpu_model->weight_bytes();
    }
#endif
  }
  std::printf("perplexity on %s (%lld tokens, windows of %d, chunks of %d)\n", data.c_str(),
              static_cast<long long>(results.front().n_tokens), o.ctx, o.chunk);
  std::printf("%-36s %12s %14s %10s\n", "kv method", "perplexity", "KV at ctx", "seconds");
  for (const auto& r : results) {
    std::printf("%-36s %12.4f %14s %10.1f\n", r.kv_spec.c_str(), r.perplexity,
                format_bytes(double(r.kv_bytes_at_ctx)).c_str(), r.seconds);
  }
#ifdef COMMVQ_HAVE_CUDA
  if (cuda)
    std::printf("device memory: weights %s, peak %s (allocator)\n",
                format_bytes(double(gpu_model->weight_bytes())).c_str(),
                format_bytes(double(cuda::allocator_stats().peak_bytes)).c_str());
#endif
  write_json(o.json_path, {{"task", "perplexity"},
                           {"model", model->gguf().path()},
                           {"data", data},
                           {"ctx", o.ctx},
                           {"chunk", o.chunk},
                           {"device", o.device},
                           {"runs", runs}});
}

}  // namespace

void register_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOpts>();
  auto* cmd = app.add_subcommand("eval", "evaluate a task with KV-cache methods, or run an experiment grid (--config)");
  add_common_options(*cmd, *o);
  add_device_option(*cmd, o->device);
  add_arith_option(*cmd, o->arith);
  auto* task_opt = cmd->add_option("--task", o->task,
                                   "task: perplexity (this table), or any grid task (passkey, number_string, "
                                   "kv_retrieval, niah, longbench, gsm8k, agreement, memory) with its options as "
                                   "--name value (e.g. --dataset qasper,trec --context-tokens 8192; commas sweep)")
                       ->check(CLI::IsMember(eval_task_types()));
  cmd->allow_extras();  // a grid task's options (config_from_cli)
  auto* config_opt =
      cmd->add_option("--config", o->config, "experiment config (experiments/*.json): run its grid into --out");
  config_opt->excludes(task_opt);
  cmd->add_option("--out", o->out,
                  "results folder for --config or a grid --task (resumable; shards may share it; for --task "
                  "without it the records go to a temporary folder that is removed)");
  cmd->add_option("--limit", o->limit, "--config / grid --task: at most this many samples per task")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--tasks", o->tasks, "--config: only these tasks (entry or instance names)")->delimiter(',');
  cmd->add_option("--shard", o->shard, "--config: run slice i of n (sample index mod n == i), e.g. 0/4");
  cmd->add_flag("--new-run", o->new_run,
                "--config: if --out holds results made from other inputs (model, codebook, data), start a fresh "
                "run beside it (<out>-2, ...) instead of stopping");
  cmd->add_flag("--own-prefill", o->own_prefill,
                "--config / grid --task: prefill every method's prompt separately instead of once for all the "
                "methods that attend alike over a prefill (same outputs, more time; for checking and timing)");
  cmd->add_option("--data", o->data, "text file (default: WikiText-2 test from the data folder)");
  cmd->add_option("--kv", o->kv, "KV-cache method spec(s); several give one table")->delimiter(';');
  cmd->add_option("--ctx", o->ctx, "perplexity window in tokens")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--max-tokens", o->max_tokens, "use at most this many tokens of the text");
  cmd->add_option("--chunk", o->chunk, "tokens per forward call (<= the method's window to read compressed KV)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->callback([o, cmd] {
    apply_common_options(*o);
    const bool cuda = use_cuda_device(o->device);
    if (cuda && !o->config.empty())
      throw Error("--device cuda: experiment grids (--config) run on the CPU; use it with --task perplexity");
    if (o->arith != "native" && (cuda || !o->config.empty() || o->task != "perplexity"))
      throw Error("--arith llamacpp goes with --task perplexity on the CPU");
    const std::vector<std::string> extras = cmd->remaining();
    (void)parse_shard(o->shard);  // a malformed --shard is the first error, before any file is read
    GridCall call;
    call.out_dir = o->out;
    call.shard = o->shard;
    call.limit = o->limit;
    call.only_tasks = o->tasks;
    call.new_run = o->new_run;
    call.own_prefill = o->own_prefill;
    call.model_path = o->model_path;
    call.matmul_given = cmd->count("--matmul") > 0;
    call.json_path = o->json_path;
    if (!o->config.empty()) {
      if (!extras.empty()) throw Error("eval --config: unknown option '" + extras.front() + "'");
      if (o->out.empty()) throw Error("eval --config needs --out DIR (the results folder)");
      ExperimentConfig cfg = ExperimentConfig::load(o->config);
      if (cmd->count("--kv") > 0) {  // --kv replaces the config's methods (LABEL=SPEC or SPEC)
        cfg.methods.clear();
        for (const auto& k : o->kv) cfg.methods.push_back(method_from_cli(k));
      }
      run_grid_and_print(cfg, call);
      return;
    }
    if (o->task != "perplexity") {
      if (cmd->count("--max-tokens") > 0) throw Error("--max-tokens goes with --task perplexity");
      // --data, --ctx and --chunk are also window options of the grid tasks (agreement): passed on as
      // the task's own options, which each task checks.
      std::vector<std::string> task_options = extras;
      if (cmd->count("--data") > 0) task_options.insert(task_options.end(), {"--data", o->data});
      if (cmd->count("--ctx") > 0) task_options.insert(task_options.end(), {"--ctx", std::to_string(o->ctx)});
      if (cmd->count("--chunk") > 0) task_options.insert(task_options.end(), {"--chunk", std::to_string(o->chunk)});
      if (cuda)
        throw Error("--device cuda: grid tasks (--task " + o->task + ") run on the CPU; use it with --task perplexity");
      if (!o->tasks.empty()) throw Error("--tasks goes with --config");
      eval_grid_task(*o, call, task_options);
      return;
    }
    if (!extras.empty()) throw Error("eval --task perplexity: unknown option '" + extras.front() + "'");
    if (!o->out.empty() || o->limit >= 0 || !o->tasks.empty() || o->shard != "0/1")
      throw Error("eval --task perplexity: --out, --limit, --tasks and --shard go with --config or a grid --task");
    eval_perplexity(*o, cuda);
  });
}

}  // namespace cvq
