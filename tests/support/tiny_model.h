#pragma once
// A tiny llama-family GGUF with random weights and a byte-level vocabulary (256 byte tokens, no
// merges), written for forward-pass and KV-cache tests.
#include <string>
#include <vector>

#include "kernels/cpu/ggml_type.h"

namespace cvq::test {

struct TinyModelSpec {
  std::string arch = "llama";  // "llama" (adjacent RoPE) or "qwen2" (half-split RoPE + QKV bias)
  int n_layers = 2, n_embd = 64, n_ff = 96, n_head = 4, n_head_kv = 2;
  int n_ctx = 256;
  float rope_theta = 10000.0f;
  GgmlType weight_type = GgmlType::F32;  // F32, F16 or Q8_0 for the matrices
  bool tied_embeddings = true;
  unsigned seed = 1;
};

// A wider variant for KV-method tests: head dim 32 (every block format fits), 4 heads / 2 KV heads,
// 512-token context.
TinyModelSpec kv_test_spec(const std::string& arch);

// Writes the model to path and returns the float weights by tensor name (as stored, after any
// quantization round trip) so a reference implementation can use the same numbers.
struct TinyModelWeights {
  std::vector<std::string> names;
  std::vector<std::vector<float>> values;
  const std::vector<float>& get(const std::string& name) const;
};
TinyModelWeights write_tiny_model(const std::string& path, const TinyModelSpec& spec);

}  // namespace cvq::test
