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

namespace {

// Shapes of the architecture presets (from each model's config.json).
struct ArchPreset {
  const char* name;
  int n_layers, n_embd, n_ff, n_head, n_head_kv, head_dim, n_vocab, n_ctx_train;
  double rope_theta;
};
constexpr ArchPreset kPresets[] = {
    {"llama-3.1-8b", 32, 4096, 14336, 32, 8, 128, 128256, 131072, 500000.0},
    {"llama-2-7b", 32, 4096, 11008, 32, 32, 128, 32000, 4096, 10000.0},
    {"mistral-7b", 32, 4096, 14336, 32, 8, 128, 32000, 32768, 1000000.0},
    {"smollm2-135m", 30, 576, 1536, 9, 3, 64, 49152, 8192, 100000.0},
};

}  // namespace

std::vector<std::string> LlamaConfig::preset_names() {
  std::vector<std::string> names;
  for (const ArchPreset& p : kPresets) names.emplace_back(p.name);
  return names;
}

LlamaConfig LlamaConfig::preset(const std::string& name) {
  for (const ArchPreset& p : kPresets) {
    if (name != p.name) continue;
    LlamaConfig c;
    c.arch = "llama";
    c.name = name;
    c.n_layers = p.n_layers;
    c.n_embd = p.n_embd;
    c.n_ff = p.n_ff;
    c.n_head = p.n_head;
    c.n_head_kv = p.n_head_kv;
    c.head_dim = p.head_dim;
    c.n_vocab = p.n_vocab;
    c.n_ctx_train = p.n_ctx_train;
    c.rope_theta = p.rope_theta;
    return c;
  }
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown architecture preset '" + name + "' (known: " + known + ")");
}

}  // namespace cvq
