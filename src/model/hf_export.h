#pragma once
// Writes a model the engine has loaded as a Hugging Face checkpoint folder: config.json,
// generation_config.json, model.safetensors (every weight dequantized, stored as f32, bf16 or f16),
// tokenizer.json and tokenizer_config.json — the folder transformers and this project's own loader
// (model/hf_checkpoint.h) read. `commvq-bench convert` calls it; the tests use it to make HF folders
// from the GGUF models they already have.
//
// GGUF `llama`/`mistral` files hold Q/K rows permuted for adjacent-pair RoPE (llama.cpp's
// converter); they are permuted back to HF's rotate-half order, so the folder is what the original
// checkpoint would have been, up to the GGUF's quantization.
//
// Byte-level BPE tokenizers only (the tokenizer.json states the pre-tokenizer as Split regexes, in
// order, then ByteLevel without its own regex). SentencePiece vocabularies and LLaMA-3.1-style
// rope_freqs tensors are refused with a clear error.
#include <string>

#include "core/safetensors.h"

namespace cvq {

class LlamaModel;

// Writes into `out_dir`, which must not exist yet (it appears whole or not at all: the files are
// written to a temporary sibling folder that is renamed at the end).
void export_hf_checkpoint(const LlamaModel& model, const std::string& out_dir, StDtype dtype);

}  // namespace cvq
