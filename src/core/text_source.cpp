#include "core/text_source.h"

#include <algorithm>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"

namespace cvq {

std::string read_text_file(const std::string& path) {
  if (!std::filesystem::exists(path)) fail_file(path, "text file not found");
  std::string s = read_file(path);
  s.erase(std::remove(s.begin(), s.end(), '\r'), s.end());
  if (s.empty()) fail_file(path, "text file is empty");
  return s;
}

}  // namespace cvq
