// `collect`: record per-layer KV activations (and the queries the value loss needs) on calibration text.
#include <cstdio>

#include "cli/commands/common.h"
#include "collect/collect.h"
#include "core/error.h"
#include "model/llama_model.h"
#include "model/model_paths.h"
#include "tasks/data_paths.h"

namespace cvq {

void register_collect(CLI::App& app) {
  struct Opts : CommonOptions {
    std::vector<std::string> text;
    int64_t tokens = 32768;
    int ctx = 2048;
    std::string out;
    std::string dtype = "f16";
    int64_t chunk_tokens = 8192;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("collect", "record per-layer keys (pre-RoPE), values and queries on calibration text");
  add_common_options(*cmd, *o);
  cmd->add_option("--text", o->text, "text file(s) (default: the Jane Austen novels in the data folder)");
  cmd->add_option("--tokens", o->tokens, "tokens to record in total")->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_option("--ctx", o->ctx, "max tokens per sequence (fresh KV cache per sequence)")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--out", o->out, "output folder (layer_XX.safetensors, tokens.safetensors, manifest.json)")
      ->required();
  cmd->add_option("--dtype", o->dtype, "storage type of keys/values/queries")->check(CLI::IsMember({"f16", "f32"}));
  cmd->add_option("--chunk-tokens", o->chunk_tokens, "save progress every this many tokens (resume granularity)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->callback([o] {
    apply_common_options(*o);
    CollectOptions co;
    co.sources = o->text;
    if (co.sources.empty()) co.sources = calibration_text_paths();
    co.tokens = o->tokens;
    co.ctx = o->ctx;
    co.out_dir = o->out;
    co.dtype = o->dtype == "f32" ? StDtype::F32 : StDtype::F16;
    co.chunk_tokens = o->chunk_tokens;
    auto model = LlamaModel::load(resolve_model_path(o->model_path));
    const CollectResult r = collect_activations(*model, co);
    if (r.was_complete) {
      std::printf("%s: already complete (%lld tokens, %d sequences)\n", r.manifest_path.c_str(),
                  static_cast<long long>(r.n_tokens), r.n_sequences);
    } else {
      std::printf("collected %lld tokens in %d sequences x %d layers into %s (%d chunks, %d resumed) in %.1fs\n",
                  static_cast<long long>(r.n_tokens), r.n_sequences, model->config().n_layers, o->out.c_str(),
                  r.chunks_total, r.chunks_skipped, r.seconds);
    }
    write_json(o->json_path, {{"out", o->out},
                              {"manifest", r.manifest_path},
                              {"n_tokens", r.n_tokens},
                              {"n_sequences", r.n_sequences},
                              {"chunks", r.chunks_total},
                              {"chunks_resumed", r.chunks_skipped},
                              {"seconds", r.seconds}});
  });
}

}  // namespace cvq
