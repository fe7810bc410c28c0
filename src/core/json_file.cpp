#include "core/json_file.h"

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"

namespace cvq {

nlohmann::json read_json_file(const std::string& path) {
  if (!std::filesystem::exists(path)) fail_file(path, "not found");
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    fail_file(path, std::string("not valid JSON: ") + e.what());
  }
}

}  // namespace cvq
