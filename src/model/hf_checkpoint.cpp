#include "model/hf_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/json_file.h"
#include "core/safetensors.h"
#include "model/hf_config.h"
#include "model/hf_tokenizer.h"

namespace cvq {
namespace {

namespace fs = std::filesystem;

GgmlType ggml_type_of(const StTensorView& t, const std::string& shard) {
  switch (t.dtype) {
    case StDtype::F32:
      return GgmlType::F32;
    case StDtype::F16:
      return GgmlType::F16;
    case StDtype::BF16:
      return GgmlType::BF16;
    default:
      fail_file(shard, "tensor '" + t.name + "' has dtype " + st_dtype_name(t.dtype) + " (supported: F32, F16, BF16)");
  }
}

// Which shard holds each tensor: one model.safetensors, or the index's weight_map.
std::map<std::string, std::string> weight_map(const std::string& dir, std::vector<std::string>& shards) {
  std::map<std::string, std::string> where;
  const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  if (fs::exists(index)) {
    const nlohmann::json j = read_json_file(index);
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) fail_file(index, "has no 'weight_map' object");
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail_file(index, "weight_map entry '" + name + "' is not a file name");
      const std::string shard = dir + "/" + file.get<std::string>();
      if (!fs::exists(shard)) fail_file(index, "names shard '" + file.get<std::string>() + "', which is missing");
      where[name] = shard;
      if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    }
    return where;
  }
  if (!fs::exists(single)) fail_file(dir, "has neither model.safetensors nor model.safetensors.index.json");
  shards.push_back(single);
  return where;  // empty: every tensor is in the single file
}

}  // namespace

std::vector<HfTensorName> hf_tensor_names(const HfConfig& c) {
  const int64_t q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  std::vector<HfTensorName> t = {
      {"model.embed_tokens.weight", "token_embd.weight", {c.n_vocab, c.n_embd}},
      {"model.norm.weight", "output_norm.weight", {c.n_embd}},
      {"lm_head.weight", "output.weight", {c.n_vocab, c.n_embd}, !c.tied_embeddings},
  };
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".", g = "blk." + std::to_string(l) + ".";
    auto add = [&](const std::string& hf, const std::string& gguf, std::vector<int64_t> shape, bool required = true) {
      t.push_back({h + hf, g + gguf, std::move(shape), required});
    };
    add("input_layernorm.weight", "attn_norm.weight", {c.n_embd});
    add("post_attention_layernorm.weight", "ffn_norm.weight", {c.n_embd});
    add("self_attn.q_proj.weight", "attn_q.weight", {q_dim, c.n_embd});
    add("self_attn.k_proj.weight", "attn_k.weight", {kv_dim, c.n_embd});
    add("self_attn.v_proj.weight", "attn_v.weight", {kv_dim, c.n_embd});
    add("self_attn.o_proj.weight", "attn_output.weight", {c.n_embd, q_dim});
    add("mlp.gate_proj.weight", "ffn_gate.weight", {c.n_ff, c.n_embd});
    add("mlp.up_proj.weight", "ffn_up.weight", {c.n_ff, c.n_embd});
    add("mlp.down_proj.weight", "ffn_down.weight", {c.n_embd, c.n_ff});
    if (c.qkv_bias) {
      add("self_attn.q_proj.bias", "attn_q.bias", {q_dim});
      add("self_attn.k_proj.bias", "attn_k.bias", {kv_dim});
      add("self_attn.v_proj.bias", "attn_v.bias", {kv_dim});
    }
  }
  return t;
}

bool is_hf_checkpoint(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(path + "/config.json", ec);
}

std::vector<std::string> hf_checkpoint_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
                        "chat_template.jinja", "model.safetensors.index.json"}) {
    if (fs::exists(dir + "/" + f)) files.push_back(dir + "/" + f);
  }
  std::vector<std::string> shards;
  weight_map(dir, shards);
  std::sort(shards.begin(), shards.end());
  files.insert(files.end(), shards.begin(), shards.end());
  return files;
}

std::unique_ptr<GgufFile> open_hf_checkpoint(const std::string& dir_arg) {
  std::string dir = dir_arg;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const HfConfig c = read_hf_config(dir);
  // The model's name: config.json's _name_or_path, unless that is only where it was loaded from.
  const bool named = !c.name.empty() && !fs::exists(c.name);
  std::map<std::string, GgufValue> md = hf_config_metadata(c, named ? c.name : fs::path(dir).filename().string());
  if (!fs::exists(dir + "/tokenizer.json"))
    fail_file(dir + "/tokenizer.json", "not found (the checkpoint's tokenizer)");
  for (auto& [k, v] : hf_tokenizer_metadata(dir, c.n_vocab)) md[k] = std::move(v);

  std::vector<std::string> shard_paths;
  const std::map<std::string, std::string> where = weight_map(dir, shard_paths);
  std::map<std::string, std::shared_ptr<SafetensorsReader>> shards;
  std::vector<std::shared_ptr<const void>> owners;
  size_t total = 0;
  for (const std::string& s : shard_paths) {
    auto r = std::make_shared<SafetensorsReader>(s);
    shards[s] = r;
    owners.push_back(r);
    total += fs::file_size(s);
  }

  std::vector<GgufTensorInfo> tensors;
  for (const HfTensorName& want : hf_tensor_names(c)) {
    std::string shard = shard_paths.front();
    if (!where.empty()) {
      const auto it = where.find(want.hf);
      if (it == where.end()) {
        if (!want.required) continue;
        fail_file(dir + "/model.safetensors.index.json", "weight_map has no tensor '" + want.hf + "'");
      }
      shard = it->second;
    }
    const SafetensorsReader& r = *shards.at(shard);
    if (!r.has(want.hf)) {
      if (!want.required && where.empty()) continue;
      fail_file(shard, "tensor '" + want.hf + "' is missing" + (where.empty() ? "" : " (the index places it here)"));
    }
    const StTensorView& t = r.tensor(want.hf);
    if (t.shape != want.shape) {
      fail_file(shard, "tensor '" + want.hf + "' has shape " + st_shape_text(t.shape) + ", expected " +
                           st_shape_text(want.shape) + " from config.json");
    }
    GgufTensorInfo g;
    g.name = want.gguf;
    g.type = ggml_type_of(t, shard);
    g.dims.assign(want.shape.rbegin(), want.shape.rend());  // GGUF: innermost dimension first
    g.n_elements = t.numel();
    g.n_bytes = t.n_bytes;
    g.data = t.data;
    tensors.push_back(std::move(g));
  }
  if (!c.rope_freq_factors.empty()) {
    auto factors = std::make_shared<std::vector<float>>(c.rope_freq_factors);
    GgufTensorInfo g;
    g.name = "rope_freqs.weight";
    g.type = GgmlType::F32;
    g.dims = {static_cast<int64_t>(factors->size())};
    g.n_elements = g.dims[0];
    g.n_bytes = factors->size() * sizeof(float);
    g.data = reinterpret_cast<const uint8_t*>(factors->data());
    owners.push_back(factors);
    tensors.push_back(std::move(g));
  }
  return GgufFile::assemble(dir, std::move(md), std::move(tensors), std::move(owners), total);
}

}  // namespace cvq
