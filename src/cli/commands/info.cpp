// `info`: what a model (GGUF file or HF folder) is — architecture, tensors by type, KV bytes per token.
#include <cstdio>
#include <map>

#include "cli/commands/common.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

namespace cvq {

void register_info(CLI::App& app) {
  auto opts = std::make_shared<CommonOptions>();
  auto* cmd = app.add_subcommand("info", "print a model's architecture, tensor summary and KV bytes per token");
  add_common_options(*cmd, *opts);
  cmd->callback([opts] {
    apply_common_options(*opts);
    const std::string path = resolve_model_path(opts->model_path);
    auto model = LlamaModel::load(path);
    const LlamaConfig& c = model->config();
    const GgufFile& f = model->gguf();
    std::printf("model        %s\n", path.c_str());
    const std::string format = f.version() ? "GGUF v" + std::to_string(f.version()) : std::string("HF checkpoint");
    std::printf("name         %s (%s, %s)\n", c.name.c_str(), format.c_str(),
                format_bytes(double(f.file_size())).c_str());
    std::printf("architecture %s: %d layers, hidden %d, FFN %d, %d heads / %d KV heads, head dim %d\n", c.arch.c_str(),
                c.n_layers, c.n_embd, c.n_ff, c.n_head, c.n_head_kv, c.head_dim);
    std::printf("rope         theta %.0f, %s pairs%s\n", c.rope_theta,
                c.rope_layout == RopeLayout::Adjacent ? "adjacent (2f,2f+1)" : "half-split (f,f+d/2)",
                c.rope_pos_scale != 1.0 ? ", linear scaling" : "");
    std::printf("vocab        %d (%s tokenizer), context %d, rms eps %g%s\n", c.n_vocab,
                f.opt_string("tokenizer.ggml.model").value_or("?").c_str(), c.n_ctx_train, double(c.rms_eps),
                c.qkv_bias ? ", QKV bias" : "");
    std::map<std::string, std::pair<int, size_t>> by_type;
    for (const auto& t : f.tensors()) {
      auto& e = by_type[ggml_type_name(static_cast<uint32_t>(t.type))];
      e.first++;
      e.second += t.n_bytes;
    }
    std::printf("tensors      %zu, %s of weights\n", f.tensors().size(),
                format_bytes(double(model->weight_bytes())).c_str());
    for (const auto& [type, e] : by_type)
      std::printf("  %-6s %4d tensors  %s\n", type.c_str(), e.first, format_bytes(double(e.second)).c_str());
    const int64_t kv = c.kv_bytes_per_token_fp16();
    std::printf("KV cache     %lld bytes/token at fp16 (%s at %d tokens)\n", static_cast<long long>(kv),
                format_bytes(double(kv) * c.n_ctx_train).c_str(), c.n_ctx_train);
    nlohmann::json j = {{"model", path},
                        {"name", c.name},
                        {"arch", c.arch},
                        {"n_layers", c.n_layers},
                        {"n_embd", c.n_embd},
                        {"n_ff", c.n_ff},
                        {"n_head", c.n_head},
                        {"n_head_kv", c.n_head_kv},
                        {"head_dim", c.head_dim},
                        {"n_vocab", c.n_vocab},
                        {"n_ctx_train", c.n_ctx_train},
                        {"rope_theta", c.rope_theta},
                        {"weight_bytes", model->weight_bytes()},
                        {"kv_bytes_per_token_fp16", kv}};
    write_json(opts->json_path, j);
  });
}

}  // namespace cvq
