#pragma once
// What ties results, collected activations and codebooks to a model, for either format: a GGUF
// file's SHA-256, or for a Hugging Face folder the SHA-256 of the lines "<file name> <sha256>\n" of
// its files (configs, tokenizer files, shards; model/hf_checkpoint.h), so a changed tokenizer or
// shard changes the identity as a changed GGUF does.
#include <cstdint>
#include <string>

namespace cvq {

std::string model_sha256(const std::string& path);
int64_t model_bytes(const std::string& path);  // the file's size, or the folder's files' total

}  // namespace cvq
