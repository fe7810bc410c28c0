// `bench compress`: compression time of each KV method against the prefill of the same prompt
// (bench/compression_time.h).
#include <cstdio>

#include "bench/bench_inputs.h"
#include "bench/compression_time.h"
#include "cli/commands/common.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

namespace cvq {

void register_bench_compress(CLI::App& bench) {
  struct Opts : CommonOptions {
    int prompt_tokens = 4096;
    std::vector<std::string> kv;
    std::string text;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand("compress", "compression time of each KV method vs the prefill of the same prompt");
  add_common_options(*cmd, *o);
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt length")->check(CLI::Range(128, 1 << 20));
  cmd->add_option("--kv", o->kv, "KV method spec(s) to time")->required()->delimiter(';');
  cmd->add_option("--text", o->text, "text the prompt is cut from (default: WikiText-2 test)");
  cmd->callback([o] {
    apply_common_options(*o);
    const std::string model_path = resolve_model_path(o->model_path);
    auto model = LlamaModel::load(model_path);
    const std::vector<int32_t> tokens = bench_prompt_tokens(*model, bench_text_path(o->text), o->prompt_tokens);
    const int n = o->prompt_tokens;
    const KvGeometry geo = model->kv_geometry();
    const RecordedPrefill rec = record_prefill(*model, tokens);
    const double prefill_s = rec.prefill_seconds;

    std::printf("compression of a %d-token prompt, %s, %d threads, matmul %s (prefill %.2f s, %.1f tok/s)\n", n,
                model->config().name.c_str(), ThreadPool::global().size(), matmul_mode_name(model->matmul_mode()),
                prefill_s, n / prefill_s);
    std::printf("%-58s %12s %14s %14s\n", "kv method", "seconds", "tokens/s", "vs prefill");
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& spec : o->kv) {
      const CompressionTime c = time_compression(geo, rec, spec);
      std::printf("%-58s %12.3f %14.1f %13.1f%%\n", spec.c_str(), c.seconds, n / c.seconds,
                  100.0 * c.seconds / prefill_s);
      runs.push_back({{"kv", spec},
                      {"seconds", c.seconds},
                      {"tokens_per_s", n / c.seconds},
                      {"share_of_prefill", c.seconds / prefill_s},
                      {"kv_bytes", c.kv_bytes}});
    }
    write_json(o->json_path, {{"model", model_path},
                              {"prompt_tokens", n},
                              {"threads", ThreadPool::global().size()},
                              {"matmul", matmul_mode_name(model->matmul_mode())},
                              {"prefill_seconds", prefill_s},
                              {"methods", runs}});
  });
}

}  // namespace cvq
