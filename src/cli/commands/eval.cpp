// `eval`: run a task with one or more KV-cache methods and print one table.
#include <cstdio>

#include "cli/commands/common.h"
#include "core/error.h"
#include "eval/data_paths.h"
#include "model/llama_model.h"
#include "model/model_paths.h"
#include "tasks/perplexity.h"
#include "tasks/text_source.h"

namespace cvq {

void register_eval(CLI::App& app) {
  struct Opts : CommonOptions {
    std::string task = "perplexity";
    std::string data;
    std::vector<std::string> kv{"fp16"};
    int ctx = 2048;
    int64_t max_tokens = -1;
    int chunk = 512;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("eval", "evaluate a task with KV-cache methods");
  add_common_options(*cmd, *o);
  cmd->add_option("--task", o->task, "task: perplexity")->check(CLI::IsMember({"perplexity"}));
  cmd->add_option("--data", o->data, "text file (default: WikiText-2 test from the data folder)");
  cmd->add_option("--kv", o->kv, "KV-cache method spec(s); several give one table")->delimiter(';');
  cmd->add_option("--ctx", o->ctx, "perplexity window in tokens")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--max-tokens", o->max_tokens, "use at most this many tokens of the text");
  cmd->add_option("--chunk", o->chunk, "tokens per forward call (<= the method's window to read compressed KV)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->callback([o] {
    apply_common_options(*o);
    const std::string data = o->data.empty() ? data_path("text/wikitext-2-raw/wiki.test.raw") : o->data;
    auto model = LlamaModel::load(resolve_model_path(o->model_path));
    const std::string text = read_text_file(data);
    const Tokenizer& tok = model->tokenizer();
    std::vector<int32_t> tokens = tok.encode(text, tok.add_bos_default(), false);
    nlohmann::json runs = nlohmann::json::array();
    std::vector<PerplexityResult> results;
    for (const auto& spec : o->kv) {
      PerplexityOptions po;
      po.ctx = o->ctx;
      po.max_tokens = o->max_tokens;
      po.chunk = o->chunk;
      po.kv_spec = spec;
      results.push_back(run_perplexity(*model, tokens, po));
      const auto& r = results.back();
      runs.push_back({{"kv", spec},
                      {"perplexity", r.perplexity},
                      {"nll_sum", r.nll_sum},
                      {"n_scored", r.n_scored},
                      {"n_tokens", r.n_tokens},
                      {"windows", r.n_windows},
                      {"kv_bytes_at_ctx", r.kv_bytes_at_ctx},
                      {"seconds", r.seconds}});
    }
    std::printf("perplexity on %s (%lld tokens, windows of %d, chunks of %d)\n", data.c_str(),
                static_cast<long long>(results.front().n_tokens), o->ctx, o->chunk);
    std::printf("%-36s %12s %14s %10s\n", "kv method", "perplexity", "KV at ctx", "seconds");
    for (const auto& r : results) {
      std::printf("%-36s %12.4f %14s %10.1f\n", r.kv_spec.c_str(), r.perplexity, format_bytes(double(r.kv_bytes_at_ctx)).c_str(),
                  r.seconds);
    }
    write_json(o->json_path, {{"task", "perplexity"},
                              {"model", model->gguf().path()},
                              {"data", data},
                              {"ctx", o->ctx},
                              {"chunk", o->chunk},
                              {"runs", runs}});
  });
}

}  // namespace cvq
