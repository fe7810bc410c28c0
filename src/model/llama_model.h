#pragma once
// A llama-family transformer loaded from a GGUF file or a Hugging Face checkpoint folder
// (model/hf_checkpoint.h), weights used in place from the memory map.
// forward() is the one entry for prefill (many tokens) and decode (one); the KV cache is a seam.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "model/gguf.h"
#include "model/llama_config.h"
#include "model/tokenizer.h"
#include "model/weight_matrix.h"

namespace cvq {

// Called per layer during forward with the pre-RoPE keys, values and post-RoPE queries of the
// batch (used by `collect`). Shapes: k, v [n x kv_dim]; q [n x q_dim].
using LayerObserver = std::function<void(int layer, const float* q_post_rope, const float* k_pre_rope, const float* v,
                                         const int32_t* positions, int n)>;

class LlamaModel {
 public:
  enum class Logits { None, Last, All };

  static std::unique_ptr<LlamaModel> load(const std::string& path);  // a .gguf file or an HF folder

  const LlamaConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& gguf() const { return *gguf_; }
  KvGeometry kv_geometry() const;
  // From now on compute as llama.cpp's CPU backend does, bit for bit (kernels/cpu/ggml_arith.h):
  // 8-bit activation blocks, ggml's accumulation orders, its exp and RoPE. Needs q4_1/q8_0
  // weights, plain RoPE and a cache made after this call with llama.cpp attention ("fp16:arith=llamacpp").
  void use_llamacpp_arithmetic();
  bool llamacpp_arithmetic() const { return llamacpp_; }
  // Prefill matmul arithmetic (model/weight_matrix.h): fp32 (default) or bf16. Throws, naming the
  // tensor, when a matrix cannot run in the mode.
  void set_matmul_mode(MatmulMode mode);
  MatmulMode matmul_mode() const { return matmul_mode_; }
  // The mode load() gives every model (the CLI's --matmul sets it once per process).
  static void set_default_matmul_mode(MatmulMode mode);
  // The chat template prompts are rendered with (model/chat_template.h): the model's own Jinja
  // source (tokenizer.chat_template), unless a format was named for every model loaded from now on
  // ("chatml", "llama3", "llama2": the CLI's --chat-template). Empty when there is neither.
  std::string chat_template() const;
  static void set_default_chat_template(const std::string& name);  // "" = the model's own
  size_t weight_bytes() const;
  // Layer's attention output projection (o_proj) as dense floats [n_embd x q_dim], row-major.
  std::vector<float> dense_attn_output(int layer) const;

  // Returns logits [rows x n_vocab] with rows = 0, 1 or n per `which`.
  std::vector<float> forward(const int32_t* tokens, const int32_t* positions, int n, KvCache& cache, Logits which,
                             const LayerObserver* observer = nullptr) const;
  // Batched decode: token i (at positions[i]) is the next token of the sequence whose cache is
  // caches[i]; the weights are read once for all of them. Returns logits [caches.size() x n_vocab],
  // each row equal to what forward(&tokens[i], &positions[i], 1, *caches[i], Last) gives.
  std::vector<float> forward_batch(const int32_t* tokens, const int32_t* positions,
                                   const std::vector<KvCache*>& caches) const;

 private:
  struct Layer {
    std::vector<float> attn_norm, ffn_norm, bq, bk, bv;
    WeightMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
  };
  LlamaModel() = default;
  // caches: one cache for all n tokens, or one per token (batched decode).
  std::vector<float> forward_rows(const int32_t* tokens, const int32_t* positions, int n,
                                  const std::vector<KvCache*>& caches, Logits which,
                                  const LayerObserver* observer) const;
  std::vector<float> forward_llamacpp(std::vector<float>& x, const int32_t* positions, int n, KvCache& cache,
                                      Logits which) const;

  std::unique_ptr<GgufFile> gguf_;
  LlamaConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  WeightMatrix token_embd_, output_;
  std::vector<float> output_norm_;
  std::vector<Layer> layers_;
  std::vector<float> rope_freq_factors_;
  bool llamacpp_ = false;
  MatmulMode matmul_mode_ = MatmulMode::Fp32;
};

}  // namespace cvq
