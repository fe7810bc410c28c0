// `bench batch`: decode throughput of B sequences advanced together against one sequence, same run
// (bench/batch_decode.h). `--kv` with the grid's methods and B = their count times the grid's decode.
#include <algorithm>
#include <cstdio>

#include "bench/batch_decode.h"
#include "bench/bench_inputs.h"
#include "cli/commands/common.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

namespace cvq {

void register_bench_batch(CLI::App& bench) {
  struct Opts : CommonOptions {
    int prompt_tokens = 512, decode_tokens = 64, rounds = 4;
    std::vector<int> batch{1, 4, 8};
    std::vector<std::string> kv{"fp16"};
    std::string text;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand("batch", "batched decode tokens/s for B sequences vs one (same run)");
  add_common_options(*cmd, *o);
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt length")->check(CLI::Range(8, 1 << 20));
  cmd->add_option("--decode-tokens", o->decode_tokens, "decode steps timed per batch size")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--rounds", o->rounds,
                  "the steps are split into this many rounds, every batch size taking its turn in each; the "
                  "median round is reported")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--batch", o->batch, "batch sizes (first: the baseline)")->delimiter(',')->check(CLI::Range(1, 64));
  cmd->add_option("--kv", o->kv, "KV method spec(s); sequence i uses kv[i mod count]")->delimiter(';');
  cmd->add_option("--text", o->text, "text the prompt is cut from (default: WikiText-2 test)");
  cmd->callback([o] {
    apply_common_options(*o);
    const std::string model_path = resolve_model_path(o->model_path);
    auto model = LlamaModel::load(model_path);
    const std::vector<int32_t> prompt = bench_prompt_tokens(*model, bench_text_path(o->text), o->prompt_tokens);
    const int n = o->prompt_tokens;
    if (n + o->decode_tokens >= model->config().n_ctx_train) throw Error("prompt + decode exceed the model's context");
    std::printf("batched decode, %s, %d threads, %d-token prompt, %d steps in %d interleaved rounds (median)\n",
                model->config().name.c_str(), ThreadPool::global().size(), n, o->decode_tokens, o->rounds);
    std::printf("%6s %12s %14s %12s %22s  %s\n", "B", "s/step", "tokens/s", "vs first", "rounds' s/step min-max",
                "methods");
    nlohmann::json runs = nlohmann::json::array();
    const std::vector<BatchDecodeRun> measured =
        measure_batch_decode(*model, prompt, o->batch, o->kv, o->decode_tokens, o->rounds);
    const double base = measured.front().tokens_per_s;
    for (const BatchDecodeRun& r : measured) {
      const auto [lo, hi] = std::minmax_element(r.round_seconds_per_step.begin(), r.round_seconds_per_step.end());
      std::printf("%6d %12.4f %14.1f %11.2fx %10.4f - %.4f  %s\n", r.batch, r.seconds_per_step, r.tokens_per_s,
                  r.tokens_per_s / base, *lo, *hi, r.methods.c_str());
      runs.push_back({{"batch", r.batch},
                      {"seconds_per_step", r.seconds_per_step},
                      {"round_seconds_per_step", r.round_seconds_per_step},
                      {"tokens_per_s", r.tokens_per_s},
                      {"ratio_vs_first", r.tokens_per_s / base},
                      {"kv", r.methods}});
    }
    write_json(o->json_path, {{"model", model_path},
                              {"prompt_tokens", n},
                              {"decode_tokens", o->decode_tokens},
                              {"rounds", o->rounds},
                              {"threads", ThreadPool::global().size()},
                              {"runs", runs}});
  });
}

}  // namespace cvq
