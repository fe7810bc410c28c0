#include "support/tiny_model.h"

#include <cmath>
#include <random>
#include <stdexcept>

#include "core/fp16.h"
#include "kernels/cpu/quant_blocks.h"
#include "support/gguf_writer.h"

namespace cvq::test {

const std::vector<float>& TinyModelWeights::get(const std::string& name) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return values[i];
  throw std::runtime_error("tiny model has no tensor " + name);
}

namespace {
// GPT-2's byte -> printable unicode mapping, so the 256 tokens form a valid byte-level vocab.
std::string byte_token(int b) {
  int cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80)
    s += static_cast<char>(cp);
  else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}
}  // namespace

TinyModelWeights write_tiny_model(const std::string& path, const TinyModelSpec& s) {
  std::mt19937 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  GgufWriter w;
  TinyModelWeights out;
  const int head_dim = s.n_embd / s.n_head, kv_dim = s.n_head_kv * head_dim, vocab = 256;
  const std::string a = s.arch;
  w.add_string("general.architecture", a);
  w.add_string("general.name", "tiny-test-model");
  w.add_u32(a + ".block_count", s.n_layers);
  w.add_u32(a + ".embedding_length", s.n_embd);
  w.add_u32(a + ".feed_forward_length", s.n_ff);
  w.add_u32(a + ".attention.head_count", s.n_head);
  w.add_u32(a + ".attention.head_count_kv", s.n_head_kv);
  w.add_u32(a + ".context_length", s.n_ctx);
  w.add_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_f32(a + ".rope.freq_base", s.rope_theta);
  std::vector<std::string> tokens;
  for (int b = 0; b < vocab; ++b) tokens.push_back(byte_token(b));
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "default");
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(vocab, 1));
  w.add_string_array("tokenizer.ggml.merges", {});
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);

  auto add_vector = [&](const std::string& name, int n, float mean, float sd) {
    std::vector<float> v(n);
    for (auto& x : v) x = mean + sd * normal(rng);
    w.add_f32_tensor(name, {n}, v);
    out.names.push_back(name);
    out.values.push_back(v);
  };
  auto add_matrix = [&](const std::string& name, int rows, int cols) {
    std::vector<float> v(static_cast<size_t>(rows) * cols);
    const float sd = 1.0f / std::sqrt(static_cast<float>(cols));
    for (auto& x : v) x = sd * normal(rng);
    std::string bytes;
    if (s.weight_type == GgmlType::F32) {
      bytes.assign(reinterpret_cast<const char*>(v.data()), v.size() * 4);
    } else if (s.weight_type == GgmlType::F16) {
      for (auto& x : v) {
        uint16_t h = float_to_fp16(x);
        x = fp16_to_float(h);
        bytes.append(reinterpret_cast<const char*>(&h), 2);
      }
    } else if (s.weight_type == GgmlType::Q8_0) {
      bytes.resize(static_cast<size_t>(rows) * (cols / 32) * 34);
      for (int r = 0; r < rows; ++r) {
        uint8_t* dst = reinterpret_cast<uint8_t*>(bytes.data()) + static_cast<size_t>(r) * (cols / 32) * 34;
        quantize_row_q8_0(v.data() + static_cast<size_t>(r) * cols, dst, cols);
        dequantize_row(GgmlType::Q8_0, dst, v.data() + static_cast<size_t>(r) * cols, cols);
      }
    } else {
      throw std::runtime_error("tiny model: unsupported weight type");
    }
    w.add_tensor(name, {cols, rows}, s.weight_type, bytes);
    out.names.push_back(name);
    out.values.push_back(v);
  };

  add_matrix("token_embd.weight", vocab, s.n_embd);
  add_vector("output_norm.weight", s.n_embd, 1.0f, 0.1f);
  if (!s.tied_embeddings) add_matrix("output.weight", vocab, s.n_embd);
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add_vector(p + "attn_norm.weight", s.n_embd, 1.0f, 0.1f);
    add_vector(p + "ffn_norm.weight", s.n_embd, 1.0f, 0.1f);
    add_matrix(p + "attn_q.weight", s.n_embd, s.n_embd);
    add_matrix(p + "attn_k.weight", kv_dim, s.n_embd);
    add_matrix(p + "attn_v.weight", kv_dim, s.n_embd);
    add_matrix(p + "attn_output.weight", s.n_embd, s.n_embd);
    add_matrix(p + "ffn_gate.weight", s.n_ff, s.n_embd);
    add_matrix(p + "ffn_up.weight", s.n_ff, s.n_embd);
    add_matrix(p + "ffn_down.weight", s.n_embd, s.n_ff);
    if (s.arch == "qwen2") {
      add_vector(p + "attn_q.bias", s.n_embd, 0.0f, 0.5f);
      add_vector(p + "attn_k.bias", kv_dim, 0.0f, 0.5f);
      add_vector(p + "attn_v.bias", kv_dim, 0.0f, 0.5f);
    }
  }
  w.write(path);
  return out;
}

TinyModelSpec kv_test_spec(const std::string& arch) {
  TinyModelSpec spec;
  spec.arch = arch;
  spec.n_embd = 128;
  spec.n_head = 4;
  spec.n_head_kv = 2;  // head dim 32
  spec.n_ff = 192;
  spec.n_ctx = 512;
  return spec;
}

}  // namespace cvq::test
