#pragma once
// config.json of a Hugging Face llama / mistral / qwen2 checkpoint: the shape, RoPE and norm settings
// the engine needs, checked, and written as the GGUF metadata llama.cpp's converter would produce.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/gguf.h"

namespace cvq {

struct HfConfig {
  std::string model_type;  // llama | mistral | qwen2
  std::string name;        // "_name_or_path" when given (the model's name, e.g. "HuggingFaceTB/SmolLM2-135M")
  int64_t n_layers = 0, n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_vocab = 0;
  int64_t max_positions = 0;
  double rms_eps = 1e-6, rope_theta = 10000.0;
  double rope_linear_factor = 0.0;       // rope_scaling {"type": "linear"}; 0 = none
  std::vector<float> rope_freq_factors;  // rope_scaling {"rope_type": "llama3"}: one per frequency
  bool tied_embeddings = false;
  bool qkv_bias = false;  // qwen2 always; llama's attention_bias
};

// Reads and checks <dir>/config.json; errors name that file.
HfConfig read_hf_config(const std::string& dir);

// LLaMA-3.1's frequency rewrite as llama.cpp's rope_freqs tensor: the divisor of each of the
// head_dim/2 base frequencies theta^(-2i/d) (1 for high frequencies, `factor` for low ones, a smooth
// blend between), so that theta_i / factor_i equals transformers' rewritten inverse frequency.
std::vector<float> llama3_rope_freq_factors(int64_t head_dim, double theta, double factor, double low_freq_factor,
                                            double high_freq_factor, double original_max_positions);

// GGUF metadata (general.*, <arch>.*, and the RoPE layout key of model/llama_config.h: HF checkpoints
// pair dimension i with i + head_dim/2, whatever the architecture).
std::map<std::string, GgufValue> hf_config_metadata(const HfConfig& c, const std::string& name);

}  // namespace cvq
