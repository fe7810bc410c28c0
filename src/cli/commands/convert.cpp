// `convert`: a model (GGUF, or an HF folder) written as a Hugging Face checkpoint folder
// (model/hf_export.h), for transformers and for the HF loader's tests.
#include <chrono>
#include <cstdio>

#include "cli/commands/common.h"
#include "core/error.h"
#include "model/hf_export.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

namespace cvq {

void register_convert(CLI::App& app) {
  struct Options {
    CommonOptions common;
    std::string out, dtype = "f32";
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("convert",
                                 "write a model as a Hugging Face checkpoint folder (config.json, "
                                 "model.safetensors, tokenizer.json, ...), weights dequantized");
  add_common_options(*cmd, o->common);
  cmd->add_option("--out", o->out, "folder to create (must not exist)")->required();
  cmd->add_option("--dtype", o->dtype, "weight dtype in model.safetensors: f32 | bf16 | f16")->capture_default_str();
  cmd->callback([o] {
    apply_common_options(o->common);
    StDtype dtype;
    if (o->dtype == "f32")
      dtype = StDtype::F32;
    else if (o->dtype == "bf16")
      dtype = StDtype::BF16;
    else if (o->dtype == "f16")
      dtype = StDtype::F16;
    else
      throw Error("--dtype '" + o->dtype + "' is not one of f32, bf16, f16");
    const std::string path = resolve_model_path(o->common.model_path);
    const auto t0 = std::chrono::steady_clock::now();
    auto model = LlamaModel::load(path);
    export_hf_checkpoint(*model, o->out, dtype);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("convert: %s -> %s (%s weights, %.1fs)\n", path.c_str(), o->out.c_str(), o->dtype.c_str(), secs);
  });
}

}  // namespace cvq
