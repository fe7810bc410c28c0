#include "core/file_hash_cache.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/sha256.h"

namespace cvq {
namespace {

std::mutex g_mu;

// What identifies one version of a file without reading it.
nlohmann::json file_version(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) fail_file(path, std::string("cannot read: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail_file(path, "not a regular file");
  const int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return {{"bytes", static_cast<int64_t>(st.st_size)},
          {"mtime_ns", mtime_ns},
          {"inode", static_cast<uint64_t>(st.st_ino)},
          {"device", static_cast<uint64_t>(st.st_dev)}};
}

nlohmann::json read_cache(const std::string& cache) {
  std::error_code ec;
  if (!std::filesystem::exists(cache, ec)) return nlohmann::json::object();
  try {
    nlohmann::json j = nlohmann::json::parse(read_file(cache));
    if (j.is_object()) return j;
  } catch (const std::exception&) {
  }
  return nlohmann::json::object();  // unreadable: start a new one
}

}  // namespace

std::string file_hash_cache_path() {
  if (const char* c = std::getenv("COMMVQ_HASH_CACHE"); c && *c) return c;
  if (const char* h = std::getenv("COMMVQ_HOME"); h && *h) return std::string(h) + "/file-hashes.json";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/commvq-bench/file-hashes.json";
  return ".cache/commvq-bench/file-hashes.json";
}

std::string sha256_file_cached(const std::string& path) {
  std::error_code ec;
  const std::string key = std::filesystem::absolute(path, ec).lexically_normal().string();
  const nlohmann::json version = file_version(path);
  const std::string cache = file_hash_cache_path();
  std::lock_guard<std::mutex> lock(g_mu);
  nlohmann::json entries = read_cache(cache);
  if (entries.contains(key) && entries[key].is_object() && entries[key].value("version", nlohmann::json()) == version &&
      entries[key].contains("sha256"))
    return entries[key]["sha256"].get<std::string>();
  const std::string digest = sha256_file(path);
  if (file_version(path) != version) fail_file(path, "changed while it was being hashed");
  for (auto it = entries.begin(); it != entries.end();) {  // forget files that are gone
    if (!std::filesystem::exists(it.key(), ec))
      it = entries.erase(it);
    else
      ++it;
  }
  entries[key] = {{"version", version}, {"sha256", digest}};
  try {
    std::filesystem::create_directories(std::filesystem::path(cache).parent_path(), ec);
    write_file_atomic(cache, entries.dump(1) + "\n");
  } catch (const std::exception&) {
    // A read-only home only costs the next run a re-hash.
  }
  return digest;
}

}  // namespace cvq
