// `bench context`: prefill / decode speed at long context per KV method, with attention's share, the
// bandwidth bound and peak RSS (bench/long_context.h).
#include <cstdio>

#include "bench/bench_inputs.h"
#include "bench/long_context.h"
#include "cli/commands/common.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

namespace cvq {

void register_bench_context(CLI::App& bench) {
  struct Opts : CommonOptions {
    std::vector<int> prompt_tokens{8192};
    std::vector<std::string> kv{"fp16"};
    int decode_tokens = 16;
    std::string text;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand(
      "context", "prefill / decode speed at long context per KV method, with attention's share and peak RSS");
  add_common_options(*cmd, *o);
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt lengths (comma list)")
      ->delimiter(',')
      ->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--kv", o->kv, "KV method spec(s)")->delimiter(';');
  cmd->add_option("--decode-tokens", o->decode_tokens, "steady decode steps timed after the first")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--text", o->text, "text the prompt is cut from, repeated as needed (default: WikiText-2 test)");
  cmd->callback([o] {
    apply_common_options(*o);
    const std::string model_path = resolve_model_path(o->model_path);
    const std::string text_path = bench_text_path(o->text);
    auto model = LlamaModel::load(model_path);
    const std::vector<int32_t> text_ids = bench_text_tokens(*model, text_path);
    const int threads = ThreadPool::global().size();
    const double bw = read_bandwidth_bytes_per_s();
    const double weights = static_cast<double>(model->weight_bytes());
    std::printf("long-context speed, %s, %d threads, matmul %s; read bandwidth %.1f GB/s, weights %.2f GB\n",
                model->config().name.c_str(), threads, matmul_mode_name(model->matmul_mode()), bw / 1e9, weights / 1e9);
    std::printf("%-44s %8s %10s %7s %9s %10s %9s %9s\n", "kv method", "prompt", "prefill/s", "attn %", "1st step",
                "decode/s", "of bound", "peak RSS");
    nlohmann::json runs = nlohmann::json::array();
    for (const int P : o->prompt_tokens) {
      if (P + o->decode_tokens + 1 > model->config().n_ctx_train) {
        throw Error("--prompt-tokens " + std::to_string(P) + " + decode exceeds the model's context (" +
                    std::to_string(model->config().n_ctx_train) + ")");
      }
      const std::vector<int32_t> prompt = repeat_tokens(text_ids, P);
      for (const auto& spec : o->kv) {
        const LongContextRun r = measure_long_context(*model, prompt, spec, o->decode_tokens, bw);
        std::printf("%-44s %8d %10.1f %6.1f%% %8.2fs %10.2f %8.0f%% %9s\n", spec.c_str(), P, r.prefill_tokens_per_s,
                    100.0 * r.prefill_attention_share, r.first_decode_step_seconds, r.decode_tokens_per_s,
                    100.0 * r.decode_tokens_per_s / r.bound_tokens_per_s,
                    format_bytes(static_cast<double>(r.peak_rss_bytes)).c_str());
        std::fflush(stdout);
        runs.push_back({{"kv", spec},
                        {"prompt_tokens", P},
                        {"prefill_tokens_per_s", r.prefill_tokens_per_s},
                        {"prefill_attention_share", r.prefill_attention_share},
                        {"first_decode_step_seconds", r.first_decode_step_seconds},
                        {"decode_tokens_per_s", r.decode_tokens_per_s},
                        {"decode_bandwidth_bound_tokens_per_s", r.bound_tokens_per_s},
                        {"kv_bytes", r.kv_bytes},
                        {"peak_rss_bytes", r.peak_rss_bytes}});
      }
    }
    write_json(o->json_path, {{"model", model_path},
                              {"threads", threads},
                              {"matmul", matmul_mode_name(model->matmul_mode())},
                              {"read_bandwidth_bytes_per_s", bw},
                              {"weight_bytes", weights},
                              {"runs", runs}});
  });
}

}  // namespace cvq
