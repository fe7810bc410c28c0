// `bench batch`: decode throughput of B sequences advanced together (LlamaModel::forward_batch)
// against one sequence, same run. Every sequence gets the same prompt, prefilled once for all of
// them (kv/shared_prefill_cache.h); sequence i uses KV method kv[i mod |kv|], so `--kv` with the
// grid's methods and B = their count times the grid's decode.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/commands/common.h"
#include "commvq/kv_methods.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kv/shared_prefill_cache.h"
#include "model/llama_model.h"
#include "model/model_paths.h"
#include "tasks/generation.h"

namespace cvq {
namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

void register_bench_batch(CLI::App& bench) {
  struct Opts : CommonOptions {
    int prompt_tokens = 512, decode_tokens = 64;
    std::vector<int> batch{1, 4, 8};
    std::vector<std::string> kv{"fp16"};
    std::string text;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand("batch", "batched decode tokens/s for B sequences vs one (same run)");
  add_common_options(*cmd, *o);
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt length")->check(CLI::Range(8, 1 << 20));
  cmd->add_option("--decode-tokens", o->decode_tokens, "decode steps timed")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--batch", o->batch, "batch sizes (first: the baseline)")->delimiter(',')->check(CLI::Range(1, 64));
  cmd->add_option("--kv", o->kv, "KV method spec(s); sequence i uses kv[i mod count]")->delimiter(';');
  cmd->add_option("--text", o->text, "text the prompt is cut from (default: WikiText-2 test)");
  cmd->callback([o] {
    apply_common_options(*o);
    const std::string model_path = resolve_model_path(o->model_path);
    auto model = LlamaModel::load(model_path);
    const std::vector<int32_t> prompt = bench_prompt_tokens(*model, bench_text_path(o->text), o->prompt_tokens);
    const int n = o->prompt_tokens, V = model->config().n_vocab;
    if (n + o->decode_tokens >= model->config().n_ctx_train) throw Error("prompt + decode exceed the model's context");
    std::vector<int32_t> pos(prompt.size());
    for (int i = 0; i < n; ++i) pos[i] = i;
    std::printf("batched decode, %s, %d threads, %d-token prompt, %d steps\n", model->config().name.c_str(),
                ThreadPool::global().size(), n, o->decode_tokens);
    std::printf("%6s %12s %14s %12s  %s\n", "B", "s/step", "tokens/s", "vs first", "methods");
    nlohmann::json runs = nlohmann::json::array();
    double base = 0.0;
    for (int B : o->batch) {
      std::vector<std::unique_ptr<KvCache>> owned;
      std::vector<KvCache*> caches;
      std::string methods;
      for (int i = 0; i < B; ++i) {
        const std::string& spec = o->kv[static_cast<size_t>(i) % o->kv.size()];
        owned.push_back(make_kv_cache(spec, model->kv_geometry()));
        caches.push_back(owned.back().get());
        if (i < static_cast<int>(o->kv.size())) methods += (i ? " | " : "") + spec;
      }
      // One prefill per signature group, then greedy steps for every sequence together.
      std::vector<int32_t> next(B), at(B, n);
      for (const auto& group : prefill_groups(caches)) {
        std::vector<KvCache*> members;
        for (size_t i : group) members.push_back(caches[i]);
        SharedPrefillCache shared(members);
        const std::vector<float> lg = model->forward(prompt.data(), pos.data(), n, shared, LlamaModel::Logits::Last);
        for (size_t i : group) next[i] = argmax(lg.data(), V);
      }
      const double t0 = now_s();
      for (int s = 0; s < o->decode_tokens; ++s) {
        const std::vector<float> lg = model->forward_batch(next.data(), at.data(), caches);
        for (int i = 0; i < B; ++i) {
          next[i] = argmax(lg.data() + static_cast<size_t>(i) * V, V);
          ++at[i];
        }
      }
      const double secs = now_s() - t0, tps = static_cast<double>(B) * o->decode_tokens / secs;
      if (base == 0.0) base = tps;
      std::printf("%6d %12.4f %14.1f %11.2fx  %s\n", B, secs / o->decode_tokens, tps, tps / base, methods.c_str());
      runs.push_back({{"batch", B},
                      {"seconds_per_step", secs / o->decode_tokens},
                      {"tokens_per_s", tps},
                      {"ratio_vs_first", tps / base},
                      {"kv", methods}});
    }
    write_json(o->json_path, {{"model", model_path},
                              {"prompt_tokens", n},
                              {"decode_tokens", o->decode_tokens},
                              {"threads", ThreadPool::global().size()},
                              {"runs", runs}});
  });
}

}  // namespace cvq
