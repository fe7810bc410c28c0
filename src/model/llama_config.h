#pragma once
// Hyper-parameters of a llama-family model (LLaMA 1/2/3, Mistral, SmolLM, Qwen2), read from GGUF
// metadata or taken from a named preset (shapes only, for memory studies without weights).
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/rope.h"

namespace cvq {

class GgufFile;

// Metadata key (not a GGUF standard) by which a model assembled from another format states its RoPE
// pairing: "half_split" or "adjacent". Without it the architecture decides (qwen2: half-split;
// llama/mistral GGUFs: adjacent, because llama.cpp's converter permutes their Q/K rows).
inline constexpr const char* kRopeLayoutKey = "commvq.rope.layout";

struct LlamaConfig {
  std::string arch;  // GGUF general.architecture
  std::string name;  // general.name or preset name
  int n_layers = 0;
  int n_embd = 0;
  int n_ff = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_vocab = 0;
  int n_ctx_train = 0;
  float rms_eps = 1e-5f;
  double rope_theta = 10000.0;
  double rope_pos_scale = 1.0;  // linear position scaling (1/factor)
  RopeLayout rope_layout = RopeLayout::Adjacent;
  bool qkv_bias = false;

  int kv_dim() const { return n_head_kv * head_dim; }
  // fp16 K+V bytes for one token across all layers.
  int64_t kv_bytes_per_token_fp16() const { return int64_t{2} * 2 * n_layers * kv_dim(); }

  static LlamaConfig from_gguf(const GgufFile& f);
  static LlamaConfig preset(const std::string& name);  // llama-3.1-8b, llama-2-7b, mistral-7b, smollm2-135m
  static std::vector<std::string> preset_names();
};

}  // namespace cvq
