// `bench decode`: decode tokens/s of each KV method at a context length, all from one shared prefill
// (bench/method_decode.h), as ratios to the first method.
#include <cstdio>

#include "bench/bench_inputs.h"
#include "bench/method_decode.h"
#include "cli/commands/common.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

namespace cvq {

void register_bench_decode(CLI::App& bench) {
  struct Opts : CommonOptions {
    int context = 8192, decode_tokens = 32, rounds = 4;
    std::vector<std::string> kv;
    std::string text;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand(
      "decode", "decode tokens/s of each KV method at a context length, one shared prefill (first method: baseline)");
  add_common_options(*cmd, *o);
  cmd->add_option("--context", o->context, "prompt tokens before the timed decode")->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--decode-tokens", o->decode_tokens, "timed decode steps per method")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--rounds", o->rounds, "the steps split into this many interleaved rounds (median reported)")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--kv", o->kv, "KV method specs")->required()->delimiter(';');
  cmd->add_option("--text", o->text, "text the prompt is cut from, repeated as needed (default: WikiText-2 test)");
  cmd->callback([o] {
    apply_common_options(*o);
    const std::string model_path = resolve_model_path(o->model_path);
    auto model = LlamaModel::load(model_path);
    const std::string text = bench_text_path(o->text);
    const std::vector<int32_t> prompt = repeat_tokens(bench_text_tokens(*model, text), o->context);
    const MethodDecodeResult res = measure_method_decode(*model, prompt, o->kv, o->decode_tokens, o->rounds);
    std::printf("decode at %d tokens of context, %s, %d threads, matmul %s (one shared prefill: %.1f s)\n", o->context,
                model->config().name.c_str(), ThreadPool::global().size(), matmul_mode_name(model->matmul_mode()),
                res.prefill_seconds);
    std::printf("%-60s %10s %10s %12s %14s\n", "kv method", "tokens/s", "vs first", "first step s", "KV MiB");
    const double base = res.runs.front().tokens_per_s;
    nlohmann::json runs = nlohmann::json::array();
    for (const MethodDecodeRun& r : res.runs) {
      std::printf("%-60s %10.2f %9.2fx %12.2f %14.1f\n", r.spec.c_str(), r.tokens_per_s, r.tokens_per_s / base,
                  r.first_step_seconds, r.kv_bytes / 1048576.0);
      runs.push_back({{"kv", r.spec},
                      {"tokens_per_s", r.tokens_per_s},
                      {"ratio_vs_first", r.tokens_per_s / base},
                      {"round_seconds_per_token", r.round_seconds_per_token},
                      {"first_step_seconds", r.first_step_seconds},
                      {"kv_bytes", r.kv_bytes}});
    }
    write_json(o->json_path, {{"model", model_path},
                              {"text", text},
                              {"context", o->context},
                              {"decode_tokens", o->decode_tokens},
                              {"rounds", o->rounds},
                              {"threads", ThreadPool::global().size()},
                              {"matmul", matmul_mode_name(model->matmul_mode())},
                              {"prefill_seconds", res.prefill_seconds},
                              {"methods", runs}});
  });
}

}  // namespace cvq
