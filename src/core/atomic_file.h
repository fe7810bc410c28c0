#pragma once
// Writes that never leave a half-written file: write to "<path>.tmp.<pid>", fsync, rename.
#include <string>
#include <string_view>

namespace cvq {

void write_file_atomic(const std::string& path, std::string_view bytes);
std::string read_file(const std::string& path);

}  // namespace cvq
