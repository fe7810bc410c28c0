#include "model/llama_config.h"

#include "core/error.h"
#include "model/gguf.h"

namespace cvq {
namespace {
int positive_int(const GgufFile& f, const std::string& key) {
  int64_t v = f.get_int(key);
  if (v <= 0 || v > (int64_t{1} << 24))
    fail_file(f.path(), "metadata '" + key + "' = " + std::to_string(v) + " is out of range");
  return static_cast<int>(v);
}
}  // namespace

LlamaConfig LlamaConfig::from_gguf(const GgufFile& f) {
  LlamaConfig c;
  c.arch = f.get_string("general.architecture");
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "mistral") {
    fail_file(f.path(), "architecture '" + c.arch + "' is not supported (supported: llama, mistral, qwen2)");
  }
  c.name = f.opt_string("general.name").value_or(c.arch);
  const std::string p = c.arch + ".";
  c.n_layers = positive_int(f, p + "block_count");
  c.n_embd = positive_int(f, p + "embedding_length");
  c.n_ff = positive_int(f, p + "feed_forward_length");
  c.n_head = positive_int(f, p + "attention.head_count");
  c.n_head_kv = f.has(p + "attention.head_count_kv") ? positive_int(f, p + "attention.head_count_kv") : c.n_head;
  c.n_ctx_train = f.has(p + "context_length") ? positive_int(f, p + "context_length") : 4096;
  c.rms_eps = static_cast<float>(f.opt_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_theta = f.opt_float(p + "rope.freq_base").value_or(10000.0);
  if (auto factor = f.opt_float(p + "rope.scaling.factor")) {
    std::string type = f.opt_string(p + "rope.scaling.type").value_or("linear");
    if (type == "linear" && *factor > 0) c.rope_pos_scale = 1.0 / *factor;
  }
  if (c.n_embd % c.n_head != 0) fail_file(f.path(), "embedding length is not a multiple of the head count");
  c.head_dim = f.has(p + "attention.key_length") ? positive_int(f, p + "attention.key_length") : c.n_embd / c.n_head;
  if (c.n_head % c.n_head_kv != 0) fail_file(f.path(), "head count is not a multiple of the KV head count");
  c.rope_layout = c.arch == "qwen2" ? RopeLayout::HalfSplit : RopeLayout::Adjacent;
  if (const auto layout = f.opt_string(kRopeLayoutKey)) {
    if (*layout == "half_split")
      c.rope_layout = RopeLayout::HalfSplit;
    else if (*layout == "adjacent")
      c.rope_layout = RopeLayout::Adjacent;
    else
      fail_file(f.path(), std::string(kRopeLayoutKey) + " '" + *layout + "' is neither half_split nor adjacent");
  }
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  if (f.has(p + "vocab_size"))
    c.n_vocab = positive_int(f, p + "vocab_size");
  else if (f.has("tokenizer.ggml.tokens"))
    c.n_vocab = static_cast<int>(f.get_string_array("tokenizer.ggml.tokens").size());
  else
    c.n_vocab = static_cast<int>(f.tensor("token_embd.weight").rows());
  return c;
}

std::vector<std::string> LlamaConfig::preset_names() {
  return {"llama-3.1-8b", "llama-2-7b", "mistral-7b", "smollm2-135m"};
}

LlamaConfig LlamaConfig::preset(const std::string& name) {
  LlamaConfig c;
  c.arch = "llama";
  c.name = name;
  if (name == "llama-3.1-8b") {
    c.n_layers = 32;
    c.n_embd = 4096;
    c.n_ff = 14336;
    c.n_head = 32;
    c.n_head_kv = 8;
    c.head_dim = 128;
    c.n_vocab = 128256;
    c.n_ctx_train = 131072;
    c.rope_theta = 500000.0;
  } else if (name == "llama-2-7b") {
    c.n_layers = 32;
    c.n_embd = 4096;
    c.n_ff = 11008;
    c.n_head = 32;
    c.n_head_kv = 32;
    c.head_dim = 128;
    c.n_vocab = 32000;
    c.n_ctx_train = 4096;
    c.rope_theta = 10000.0;
  } else if (name == "mistral-7b") {
    c.n_layers = 32;
    c.n_embd = 4096;
    c.n_ff = 14336;
    c.n_head = 32;
    c.n_head_kv = 8;
    c.head_dim = 128;
    c.n_vocab = 32000;
    c.n_ctx_train = 32768;
    c.rope_theta = 1000000.0;
  } else if (name == "smollm2-135m") {
    c.n_layers = 30;
    c.n_embd = 576;
    c.n_ff = 1536;
    c.n_head = 9;
    c.n_head_kv = 3;
    c.head_dim = 64;
    c.n_vocab = 49152;
    c.n_ctx_train = 8192;
    c.rope_theta = 100000.0;
  } else {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown architecture preset '" + name + "' (known: " + known + ")");
  }
  return c;
}

}  // namespace cvq
