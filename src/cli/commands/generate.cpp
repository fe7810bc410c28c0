// `generate`: greedy decoding with streamed output and a tokens/s line at the end.
#include <chrono>
#include <cstdio>

#include "cli/commands/common.h"
#include "commvq/kv_methods.h"
#include "core/error.h"
#include "model/chat_template.h"
#include "model/llama_model.h"
#include "model/model_paths.h"
#include "tasks/generation.h"

namespace cvq {

void register_generate(CLI::App& app) {
  struct Opts : CommonOptions {
    std::string prompt;
    bool chat = false;
    int max_new = 128;
    std::string kv = "fp16";
    std::string arith = "native";
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("generate", "greedy text generation (streams the output)");
  add_common_options(*cmd, *o);
  cmd->add_option("--prompt,-p", o->prompt, "prompt text")->required();
  cmd->add_flag("--chat", o->chat, "wrap the prompt in the model's chat template as a user turn");
  cmd->add_option("--max-new-tokens,-n", o->max_new, "tokens to generate at most")->check(CLI::PositiveNumber);
  cmd->add_option("--kv", o->kv, "KV-cache method spec (e.g. fp16)");
  add_arith_option(*cmd, o->arith);
  cmd->callback([o] {
    apply_common_options(*o);
    auto model = LlamaModel::load(resolve_model_path(o->model_path));
    std::string text = o->prompt;
    if (o->chat) {
      const std::string source = model->chat_template();
      if (source.empty()) {
        throw Error(model->gguf().path() +
                    ": the model has no chat template (tokenizer.chat_template); name the "
                    "format with --chat-template chatml|llama3|llama2");
      }
      text = render_chat_from_source(source, {{"user", o->prompt}}, true);
    }
    const std::string kv = apply_arith(o->arith, *model, o->kv);
    auto cache = make_kv_cache(kv, model->kv_geometry());
    GenerationResult r = generate_greedy(*model, *cache, text, o->max_new, [](const std::string& piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    });
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "[%d prompt tokens: %.1f tokens/s prefill; %d generated: %.1f tokens/s decode; KV %s (%s)]\n",
                 r.prompt_tokens, r.prefill_tokens_per_s(), r.generated_tokens, r.decode_tokens_per_s(),
                 format_bytes(double(r.kv_bytes)).c_str(), o->kv.c_str());
    write_json(o->json_path, {{"prompt", text},
                              {"output", r.text},
                              {"prompt_tokens", r.prompt_tokens},
                              {"generated_tokens", r.generated_tokens},
                              {"prefill_tokens_per_s", r.prefill_tokens_per_s()},
                              {"decode_tokens_per_s", r.decode_tokens_per_s()},
                              {"kv", o->kv},
                              {"kv_bytes", r.kv_bytes}});
  });
}

}  // namespace cvq
