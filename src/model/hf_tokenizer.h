#pragma once
// The tokenizer of a Hugging Face checkpoint folder — tokenizer.json, with tokenizer_config.json,
// generation_config.json, config.json and chat_template.jinja where present — as the GGUF tokenizer
// metadata llama.cpp's converter would write (tokenizer.ggml.*, tokenizer.chat_template), so the one
// Tokenizer (model/tokenizer.h) serves both formats.
//
// Two families of BPE tokenizer.json are supported.
//
// Byte-level BPE (GPT-2 byte alphabet: SmolLM, Qwen2, LLaMA-3). The pre-tokenizer is taken from the
// file itself, not guessed from a model name:
//   ByteLevel{use_regex: true}        -> GPT-2's regex, then the byte mapping
//   Split{Regex, behavior: Isolated}  -> that regex (matches and the gaps between them are pieces)
//   Digits{individual_digits}         -> \p{N} (each digit) or \p{N}+ (runs)
//   Sequence[...]                     -> each in order, each splitting the previous one's pieces
// A normalizer other than none or NFC, ByteLevel{add_prefix_space: true}, other Split behaviors,
// and non-BPE models are refused with an error naming the file. NFC is accepted without
// normalizing, as llama.cpp does: text that is already NFC (nearly all text) tokenizes the same.
//
// SentencePiece-style BPE with byte_fallback (LLaMA-2, Mistral): spaces become "▁", a "▁" is
// prefixed, pairs merge by merge rank, characters outside the vocabulary become <0xXX> tokens.
// The prefix rule follows the file: the legacy normalizer Prepend("▁") + Replace(" ", "▁") prefixes
// every text segment (also after special tokens, as llama.cpp does); a Metaspace pre-tokenizer
// (split false) prefixes only text that does not already start with a space, and with
// prepend_scheme "first" only at the start of the input.
#include <cstdint>
#include <map>
#include <string>

#include "model/gguf.h"
#include "model/tokenizer.h"

namespace cvq {

// n_vocab: the model's vocabulary size (config.json); ids the tokenizer does not define up to it
// become unused "[PAD<id>]" tokens, as llama.cpp's converter pads them.
std::map<std::string, GgufValue> hf_tokenizer_metadata(const std::string& dir, int64_t n_vocab);

// The tokenizer of a folder that may hold only tokenizer.json (+ tokenizer_config.json), at its own
// vocabulary size.
TokenizerData hf_tokenizer_data(const std::string& dir);

}  // namespace cvq
