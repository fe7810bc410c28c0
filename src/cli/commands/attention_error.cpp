// `attention-error`: per-layer attention-output error of KV methods against the reference cache on a
// text, teacher-forced (tasks/attention_error.h). A diagnosis tool: which layers, and whether keys and
// values compressed together cost more than each alone.
#include <cmath>
#include <cstdio>

#include "bench/bench_inputs.h"
#include "cli/commands/common.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "model/model_paths.h"
#include "tasks/attention_error.h"

namespace cvq {

void register_attention_error(CLI::App& app) {
  struct Opts : CommonOptions {
    int tokens = 4096;
    std::vector<std::string> kv;
    std::string text;
    AttentionErrorOptions ae;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "attention-error", "per-layer attention-output error of KV methods vs the reference cache (teacher-forced)");
  add_common_options(*cmd, *o);
  cmd->add_option("--kv", o->kv, "KV method spec(s)")->required()->delimiter(';');
  cmd->add_option("--tokens", o->tokens, "tokens of the text to run")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--text", o->text, "text file (default: WikiText-2 test)");
  cmd->add_option("--chunk", o->ae.chunk, "tokens per forward call")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--from", o->ae.from, "errors over query positions >= this")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--reference", o->ae.reference, "reference KV method");
  cmd->callback([o] {
    apply_common_options(*o);
    const std::string model_path = resolve_model_path(o->model_path);
    auto model = LlamaModel::load(model_path);
    const std::vector<int32_t> tokens = bench_prompt_tokens(*model, bench_text_path(o->text), o->tokens);
    const std::vector<AttentionError> res = measure_attention_error(*model, tokens, o->kv, o->ae);
    std::printf("attention-output error vs %s, %s, %d tokens (queries from %d), chunk %d, %d threads\n",
                o->ae.reference.c_str(), model->config().name.c_str(), o->tokens, o->ae.from, o->ae.chunk,
                ThreadPool::global().size());
    std::printf("%6s", "layer");
    for (size_t m = 0; m < res.size(); ++m) std::printf(" %10s", ("[" + std::to_string(m + 1) + "]").c_str());
    std::printf("\n");
    const size_t L = res.front().layer_rel.size();
    for (size_t l = 0; l < L; ++l) {
      std::printf("%6zu", l);
      for (const AttentionError& r : res) std::printf(" %10.4f", r.layer_rel[l]);
      std::printf("\n");
    }
    std::printf("%6s", "mean");
    for (const AttentionError& r : res) std::printf(" %10.4f", r.mean_rel);
    std::printf("\n%6s", "bias");  // mean over layers of the error's systematic share
    for (const AttentionError& r : res) std::printf(" %10.4f", r.mean_bias_share);
    std::printf("\n");
    nlohmann::json methods = nlohmann::json::array();
    for (size_t m = 0; m < res.size(); ++m) {
      std::printf("[%zu] %s\n", m + 1, res[m].spec.c_str());
      methods.push_back({{"kv", res[m].spec},
                         {"layer_rel_error", res[m].layer_rel},
                         {"mean_rel_error", res[m].mean_rel},
                         {"layer_bias_share", res[m].layer_bias_share},
                         {"mean_bias_share", res[m].mean_bias_share}});
    }
    write_json(o->json_path, {{"model", model_path},
                              {"text", bench_text_path(o->text)},
                              {"tokens", o->tokens},
                              {"from", o->ae.from},
                              {"chunk", o->ae.chunk},
                              {"reference", o->ae.reference},
                              {"methods", methods}});
  });
}

}  // namespace cvq
