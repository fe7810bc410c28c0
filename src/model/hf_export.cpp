#include "model/hf_export.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cpu/quant_blocks.h"
#include "model/hf_checkpoint.h"
#include "model/hf_config.h"
#include "model/llama_model.h"
#include "model/pretokenizer.h"

namespace cvq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

HfConfig hf_config_of(const LlamaModel& model) {
  const LlamaConfig& l = model.config();
  const GgufFile& f = model.gguf();
  if (f.find_tensor("rope_freqs.weight")) {
    fail_file(f.path(),
              "has a rope_freqs tensor (LLaMA-3.1 frequency scaling), which convert cannot express in config.json");
  }
  HfConfig c;
  c.model_type = l.arch;
  c.name = l.name;
  c.n_layers = l.n_layers;
  c.n_embd = l.n_embd;
  c.n_ff = l.n_ff;
  c.n_head = l.n_head;
  c.n_head_kv = l.n_head_kv;
  c.head_dim = l.head_dim;
  c.n_vocab = l.n_vocab;
  c.max_positions = l.n_ctx_train;
  c.rms_eps = l.rms_eps;
  c.rope_theta = l.rope_theta;
  if (l.rope_pos_scale != 1.0) c.rope_linear_factor = 1.0 / l.rope_pos_scale;
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  c.qkv_bias = l.qkv_bias;
  return c;
}

json config_json(const HfConfig& c, const TokenizerData& t, StDtype dtype) {
  const char* arch = c.model_type == "qwen2"     ? "Qwen2ForCausalLM"
                     : c.model_type == "mistral" ? "MistralForCausalLM"
                                                 : "LlamaForCausalLM";
  json j = {{"_name_or_path", c.name},
            {"architectures", {arch}},
            {"model_type", c.model_type},
            {"hidden_size", c.n_embd},
            {"intermediate_size", c.n_ff},
            {"num_hidden_layers", c.n_layers},
            {"num_attention_heads", c.n_head},
            {"num_key_value_heads", c.n_head_kv},
            {"head_dim", c.head_dim},
            {"vocab_size", c.n_vocab},
            {"max_position_embeddings", c.max_positions},
            {"rms_norm_eps", c.rms_eps},
            {"rope_theta", c.rope_theta},
            {"rope_scaling", nullptr},
            {"hidden_act", "silu"},
            {"tie_word_embeddings", c.tied_embeddings},
            {"torch_dtype", dtype == StDtype::BF16  ? "bfloat16"
                            : dtype == StDtype::F16 ? "float16"
                                                    : "float32"}};
  if (c.rope_linear_factor > 0) j["rope_scaling"] = {{"type", "linear"}, {"factor", c.rope_linear_factor}};
  if (c.model_type == "llama") j["attention_bias"] = c.qkv_bias;
  if (c.model_type == "qwen2") j["use_sliding_window"] = false;
  if (t.bos_id >= 0) j["bos_token_id"] = t.bos_id;
  if (t.eos_id >= 0) j["eos_token_id"] = t.eos_id;
  return j;
}

// tokenizer.json for a byte-level BPE vocabulary, its pre-tokenizer written as the regexes the
// engine applies (so transformers and this project split text the same way).
json tokenizer_json(const TokenizerData& t, const std::string& path) {
  if (t.model != "gpt2") {
    fail_file(path,
              "has a '" + t.model + "' (SentencePiece) vocabulary; convert writes byte-level BPE tokenizers only");
  }
  const PretokenizerConfig pre = pretokenizer_config_of(t);
  json steps = json::array();
  for (const std::string& r : pre.regexes) {
    steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", r}}}, {"behavior", "Isolated"}, {"invert", false}});
  }
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});

  json vocab = json::object();
  json added = json::array();
  for (size_t i = 0; i < t.tokens.size(); ++i) {
    vocab[t.tokens[i]] = i;
    const int32_t type = t.token_types.empty() ? 1 : t.token_types[i];
    if (type == 3 || type == 4) {
      added.push_back({{"id", i},
                       {"content", t.tokens[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", type == 3}});
    }
  }
  json post = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  if (t.add_bos && t.bos_id >= 0) {
    const std::string bos = t.tokens[static_cast<size_t>(t.bos_id)];
    post = {
        {"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{bos, {{"id", bos}, {"ids", {t.bos_id}}, {"tokens", {bos}}}}}}};
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", steps}}},
          {"post_processor", post},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", pre.ignore_merges},
            {"vocab", vocab},
            {"merges", t.merges}}}};
}

json tokenizer_config_json(const TokenizerData& t, const GgufFile& f, int64_t max_positions) {
  json j = {{"tokenizer_class", "PreTrainedTokenizerFast"},
            {"add_bos_token", t.add_bos},
            {"add_eos_token", false},
            {"clean_up_tokenization_spaces", false},
            {"model_max_length", max_positions}};
  j["bos_token"] = t.bos_id >= 0 ? json(t.tokens[static_cast<size_t>(t.bos_id)]) : json(nullptr);
  j["eos_token"] = t.eos_id >= 0 ? json(t.tokens[static_cast<size_t>(t.eos_id)]) : json(nullptr);
  if (const auto chat = f.opt_string("tokenizer.chat_template")) j["chat_template"] = *chat;
  return j;
}

// HF row of GGUF row r in a Q/K matrix of `n_head` heads: llama.cpp's converter stored row
// h*d + j*d/2 + i (rotate-half order) at h*d + 2i + j (adjacent pairs).
int64_t hf_row_of_gguf_row(int64_t r, int64_t head_dim) {
  const int64_t h = r / head_dim, k = r % head_dim;
  return h * head_dim + (k % 2) * (head_dim / 2) + k / 2;
}

std::string encode(const std::vector<float>& v, StDtype dtype) {
  std::string out;
  if (dtype == StDtype::F32) {
    out.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    return out;
  }
  out.resize(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = dtype == StDtype::BF16 ? float_to_bf16(v[i]) : float_to_fp16(v[i]);
    std::memcpy(&out[2 * i], &h, 2);
  }
  return out;
}

void write_weights(const LlamaModel& model, const HfConfig& c, StDtype dtype, const std::string& path) {
  const GgufFile& f = model.gguf();
  const bool unpermute = model.config().rope_layout == RopeLayout::Adjacent;
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  for (const HfTensorName& name : hf_tensor_names(c)) {
    const GgufTensorInfo* t = f.find_tensor(name.gguf);
    if (!t) {
      if (!name.required) continue;
      fail_file(f.path(), "tensor '" + name.gguf + "' is missing");
    }
    const int64_t cols = t->dims[0], rows = t->rows();
    std::vector<float> v(static_cast<size_t>(rows * cols));
    const size_t row_bytes = ggml_row_bytes(t->type, cols);
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(t->type, t->data + static_cast<size_t>(r) * row_bytes, v.data() + r * cols, cols);
    }
    const bool q_or_k =
        name.gguf.find("attn_q.") != std::string::npos || name.gguf.find("attn_k.") != std::string::npos;
    if (unpermute && q_or_k) {  // rows of a matrix, elements of a bias
      const int64_t n = rows > 1 ? rows : cols, width = rows > 1 ? cols : 1;
      std::vector<float> hf(v.size());
      for (int64_t r = 0; r < n; ++r) {
        std::copy_n(v.begin() + r * width, width, hf.begin() + hf_row_of_gguf_row(r, c.head_dim) * width);
      }
      v.swap(hf);
    }
    const std::string bytes = encode(v, dtype);
    w.add(name.hf, dtype, name.shape, bytes.data(), bytes.size());
  }
  w.write(path);
}

}  // namespace

void export_hf_checkpoint(const LlamaModel& model, const std::string& out_dir_arg, StDtype dtype) {
  if (dtype != StDtype::F32 && dtype != StDtype::BF16 && dtype != StDtype::F16) {
    throw Error(std::string("convert: dtype ") + st_dtype_name(dtype) + " is not a float type (f32, bf16, f16)");
  }
  std::string out_dir = out_dir_arg;
  while (out_dir.size() > 1 && out_dir.back() == '/') out_dir.pop_back();
  if (fs::exists(out_dir)) fail_file(out_dir, "already exists (convert writes a new folder)");
  const GgufFile& f = model.gguf();
  const HfConfig c = hf_config_of(model);
  const TokenizerData t = tokenizer_data_from_gguf(f);
  const json tok = tokenizer_json(t, f.path());

  const fs::path final_dir = fs::absolute(out_dir);
  if (!final_dir.parent_path().empty()) fs::create_directories(final_dir.parent_path());
  const fs::path tmp = final_dir.parent_path() / (final_dir.filename().string() + ".tmp-" + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write_file_atomic((tmp / "config.json").string(), config_json(c, t, dtype).dump(2) + "\n");
    json gen = {{"do_sample", false}};
    if (t.bos_id >= 0) gen["bos_token_id"] = t.bos_id;
    if (t.eos_id >= 0) gen["eos_token_id"] = t.eos_id;
    write_file_atomic((tmp / "generation_config.json").string(), gen.dump(2) + "\n");
    write_file_atomic((tmp / "tokenizer.json").string(), tok.dump(2) + "\n");
    write_file_atomic((tmp / "tokenizer_config.json").string(),
                      tokenizer_config_json(t, f, c.max_positions).dump(2) + "\n");
    write_weights(model, c, dtype, (tmp / "model.safetensors").string());
    fs::rename(tmp, final_dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace cvq
