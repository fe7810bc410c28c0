#pragma once
// Plain-text evaluation data: read a file (UTF-8; "\r" removed, as WikiText-2's raw files need).
#include <string>

namespace cvq {

std::string read_text_file(const std::string& path);

}  // namespace cvq
