#include "model/model_identity.h"

#include <filesystem>

#include "core/error.h"
#include "core/file_hash_cache.h"
#include "core/sha256.h"
#include "model/hf_checkpoint.h"

namespace cvq {

namespace fs = std::filesystem;

std::string model_sha256(const std::string& path) {
  if (!fs::exists(path)) fail_file(path, "not found (model)");
  if (!is_hf_checkpoint(path)) return sha256_file_cached(path);
  std::string lines;
  for (const std::string& f : hf_checkpoint_files(path)) {
    lines += fs::path(f).filename().string() + " " + sha256_file_cached(f) + "\n";
  }
  return sha256_hex(lines.data(), lines.size());
}

int64_t model_bytes(const std::string& path) {
  if (!fs::exists(path)) fail_file(path, "not found (model)");
  if (!is_hf_checkpoint(path)) return static_cast<int64_t>(fs::file_size(path));
  int64_t total = 0;
  for (const std::string& f : hf_checkpoint_files(path)) total += static_cast<int64_t>(fs::file_size(f));
  return total;
}

}  // namespace cvq
