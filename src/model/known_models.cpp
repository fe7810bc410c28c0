#include "model/known_models.h"

namespace cvq {

const std::vector<KnownModel>& known_models() {
  static const std::vector<KnownModel> models = {
      {"smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf",
       "SmolLM2-135M-Instruct, Q4_1 (the default; fast, too weak for task scores)"},
      {"qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
       "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (24 layers, head dim 64, 32K context)"},
      {"qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
       "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (28 layers, head dim 128 like LLaMA-3.1-8B, 32K context)"},
  };
  return models;
}

const KnownModel* find_known_model(const std::string& name) {
  for (const KnownModel& m : known_models())
    if (m.name == name) return &m;
  return nullptr;
}

std::string default_codebook_path(const std::string& model_name, int bits) {
  return "results/codebooks/" + model_name + "-commvq-" + std::to_string(bits) + "bit.safetensors";
}

std::string default_kvquant_calib_path(const std::string& model_name) {
  return "results/codebooks/" + model_name + ".kvquant.safetensors";
}

}  // namespace cvq
