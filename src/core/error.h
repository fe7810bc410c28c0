#pragma once
// One exception type for bad input and failed operations. The CLI prints what() and exits non-zero,
// so messages must name the file (or spec) and the problem.
#include <stdexcept>
#include <string>

namespace cvq {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "<path>: <problem>" — the house style for file errors.
[[noreturn]] inline void fail_file(const std::string& path, const std::string& problem) {
  throw Error(path + ": " + problem);
}

}  // namespace cvq
