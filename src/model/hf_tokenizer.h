#pragma once
// The tokenizer of a Hugging Face checkpoint folder — tokenizer.json, with tokenizer_config.json,
// generation_config.json, config.json and chat_template.jinja where present — as the GGUF tokenizer
// metadata llama.cpp's converter would write (tokenizer.ggml.*, tokenizer.chat_template), so the one
// Tokenizer (model/tokenizer.h) serves both formats.
//
// Supported: byte-level BPE (GPT-2 byte alphabet: SmolLM, Qwen2, LLaMA-3). The pre-tokenizer is
// taken from the file itself, not guessed from a model name:
//   ByteLevel{use_regex: true}        -> GPT-2's regex, then the byte mapping
//   Split{Regex, behavior: Isolated}  -> that regex (matches and the gaps between them are pieces)
//   Digits{individual_digits}         -> \p{N} (each digit) or \p{N}+ (runs)
//   Sequence[...]                     -> each in order, each splitting the previous one's pieces
// A normalizer other than none or NFC, ByteLevel{add_prefix_space: true}, other Split behaviors,
// and non-BPE models are refused with an error naming the file. NFC is accepted without
// normalizing, as llama.cpp does: text that is already NFC (nearly all text) tokenizes the same.
#include <cstdint>
#include <map>
#include <string>

#include "model/gguf.h"

namespace cvq {

// n_vocab: the model's vocabulary size (config.json); ids the tokenizer does not define up to it
// become unused "[PAD<id>]" tokens, as llama.cpp's converter pads them.
std::map<std::string, GgufValue> hf_tokenizer_metadata(const std::string& dir, int64_t n_vocab);

}  // namespace cvq
