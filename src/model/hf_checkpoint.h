#pragma once
// A Hugging Face checkpoint folder (config.json, model.safetensors or model.safetensors.index.json +
// shards, tokenizer.json, and optionally tokenizer_config.json, generation_config.json,
// chat_template.jinja) opened as the GgufFile the engine reads: metadata as llama.cpp's converter
// would write it (model/hf_config.h, model/hf_tokenizer.h) and tensors renamed to GGUF's names,
// used in place from the memory-mapped shards (f32, f16 or bf16; no copy, no conversion).
//
// Layout: HF stores Q/K rows in the order transformers' rotate_half expects (pair i with
// i + head_dim/2). The weights are not permuted; the model is marked half-split instead
// (kRopeLayoutKey), which gives the same attention as llama.cpp's permuted GGUF rows.
#include <memory>
#include <string>
#include <vector>

#include "model/gguf.h"

namespace cvq {

struct HfConfig;

// Every tensor a checkpoint of this config holds: its HF name and shape (row-major, outermost first)
// and the GGUF name the engine reads it under. lm_head is optional when the embeddings are tied.
struct HfTensorName {
  std::string hf, gguf;
  std::vector<int64_t> shape;
  bool required = true;
};
std::vector<HfTensorName> hf_tensor_names(const HfConfig& c);

// True when `path` is a directory holding config.json.
bool is_hf_checkpoint(const std::string& path);

// Errors name the file at fault: a missing shard, an index naming a tensor its shard lacks, a wrong
// dtype or shape (checked against config.json), a corrupt safetensors header.
std::unique_ptr<GgufFile> open_hf_checkpoint(const std::string& dir);

// The files that make up the checkpoint (for identity digests): configs, tokenizer files, shards.
std::vector<std::string> hf_checkpoint_files(const std::string& dir);

}  // namespace cvq
