#include "model/hf_config.h"

#include <cmath>

#include "core/error.h"
#include "core/json_file.h"
#include "model/llama_config.h"

namespace cvq {
namespace {

using nlohmann::json;

int64_t positive(const json& j, const char* key, const std::string& path) {
  if (!j.contains(key) || !j[key].is_number_integer())
    fail_file(path, std::string("'") + key + "' is missing or not an integer");
  const int64_t v = j[key].get<int64_t>();
  if (v <= 0 || v > (int64_t{1} << 24))
    fail_file(path, std::string("'") + key + "' = " + std::to_string(v) + " is out of range");
  return v;
}

double number_or(const json& j, const char* key, double fallback) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}

void read_rope_scaling(const json& s, HfConfig& c, const std::string& path) {
  if (s.is_null()) return;
  if (!s.is_object()) fail_file(path, "rope_scaling is neither null nor an object");
  // transformers spells the kind "rope_type" (newer) or "type" (older).
  const std::string type = s.value("rope_type", s.value("type", std::string()));
  const double factor = number_or(s, "factor", 0.0);
  if (type == "default") return;
  if (factor <= 0) fail_file(path, "rope_scaling '" + type + "' needs a positive 'factor'");
  if (type == "linear") {
    c.rope_linear_factor = factor;
  } else if (type == "llama3") {
    for (const char* k : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
      if (!s.contains(k) || !s[k].is_number()) fail_file(path, std::string("rope_scaling llama3 needs '") + k + "'");
    }
    c.rope_freq_factors = llama3_rope_freq_factors(c.head_dim, c.rope_theta, factor, s["low_freq_factor"].get<double>(),
                                                   s["high_freq_factor"].get<double>(),
                                                   s["original_max_position_embeddings"].get<double>());
  } else {
    fail_file(path, "rope_scaling type '" + type + "' is not supported (supported: linear, llama3)");
  }
}

}  // namespace

std::vector<float> llama3_rope_freq_factors(int64_t head_dim, double theta, double factor, double low_freq_factor,
                                            double high_freq_factor, double original_max_positions) {
  const double low_freq_wavelen = original_max_positions / low_freq_factor;
  const double high_freq_wavelen = original_max_positions / high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < head_dim; i += 2) {
    const double freq = 1.0 / std::pow(theta, static_cast<double>(i) / static_cast<double>(head_dim));
    const double wavelen = 2.0 * M_PI / freq;
    if (wavelen < high_freq_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_freq_wavelen) {
      out.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (original_max_positions / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      out.push_back(static_cast<float>(1.0 / ((1.0 - smooth) / factor + smooth)));
    }
  }
  return out;
}

HfConfig read_hf_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  const json j = read_json_file(path);
  if (!j.is_object()) fail_file(path, "not a JSON object");
  HfConfig c;
  c.model_type = j.value("model_type", std::string());
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2") {
    fail_file(path, "model_type '" + c.model_type + "' is not supported (supported: llama, mistral, qwen2)");
  }
  if (j.contains("_name_or_path") && j["_name_or_path"].is_string()) c.name = j["_name_or_path"].get<std::string>();
  c.n_layers = positive(j, "num_hidden_layers", path);
  c.n_embd = positive(j, "hidden_size", path);
  c.n_ff = positive(j, "intermediate_size", path);
  c.n_head = positive(j, "num_attention_heads", path);
  c.n_head_kv = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                    ? positive(j, "num_key_value_heads", path)
                    : c.n_head;
  c.n_vocab = positive(j, "vocab_size", path);
  c.max_positions = j.contains("max_position_embeddings") ? positive(j, "max_position_embeddings", path) : 4096;
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = positive(j, "head_dim", path);
  } else {
    if (c.n_embd % c.n_head != 0) fail_file(path, "hidden_size is not a multiple of num_attention_heads");
    c.head_dim = c.n_embd / c.n_head;
  }
  if (c.head_dim % 2 != 0)
    fail_file(path, "head_dim " + std::to_string(c.head_dim) + " is odd (RoPE pairs dimensions)");
  if (c.n_head % c.n_head_kv != 0) fail_file(path, "num_attention_heads is not a multiple of num_key_value_heads");
  c.rms_eps = number_or(j, "rms_norm_eps", 1e-6);
  c.rope_theta = number_or(j, "rope_theta", 10000.0);
  read_rope_scaling(j.value("rope_scaling", json()), c, path);
  c.tied_embeddings = j.value("tie_word_embeddings", false);  // transformers' default for all three
  c.qkv_bias = c.model_type == "qwen2" || j.value("attention_bias", false);
  if (j.value("mlp_bias", false)) fail_file(path, "mlp_bias = true is not supported");
  if (j.contains("hidden_act") && j["hidden_act"] != "silu") {
    fail_file(path, "hidden_act '" + j["hidden_act"].dump() + "' is not supported (supported: silu)");
  }
  return c;
}

std::map<std::string, GgufValue> hf_config_metadata(const HfConfig& c, const std::string& name) {
  std::map<std::string, GgufValue> md;
  const std::string p = c.model_type + ".";
  md["general.architecture"] = GgufValue::of(c.model_type);
  md["general.name"] = GgufValue::of(name);
  md[p + "block_count"] = GgufValue::of(c.n_layers);
  md[p + "embedding_length"] = GgufValue::of(c.n_embd);
  md[p + "feed_forward_length"] = GgufValue::of(c.n_ff);
  md[p + "attention.head_count"] = GgufValue::of(c.n_head);
  md[p + "attention.head_count_kv"] = GgufValue::of(c.n_head_kv);
  md[p + "attention.key_length"] = GgufValue::of(c.head_dim);
  md[p + "attention.value_length"] = GgufValue::of(c.head_dim);
  md[p + "context_length"] = GgufValue::of(c.max_positions);
  md[p + "vocab_size"] = GgufValue::of(c.n_vocab);
  md[p + "attention.layer_norm_rms_epsilon"] = GgufValue::of(c.rms_eps);
  md[p + "rope.freq_base"] = GgufValue::of(c.rope_theta);
  if (c.rope_linear_factor > 0) {
    md[p + "rope.scaling.type"] = GgufValue::of(std::string("linear"));
    md[p + "rope.scaling.factor"] = GgufValue::of(c.rope_linear_factor);
  }
  md[kRopeLayoutKey] = GgufValue::of(std::string("half_split"));
  return md;
}

}  // namespace cvq
