#pragma once
// Test helpers for the real model and data. A missing file skips a test locally but fails it
// under CI=true, where scripts/setup.sh must have installed everything.
#include <filesystem>
#include <string>

namespace cvq::test {

bool in_ci();
std::string model_path();                               // as the CLI resolves the default model
std::string known_model_path(const std::string& name);  // a known model's file in the model cache
std::string data_file(const std::string& relative);     // under the data folder
std::string fixture_path(const std::string& name);      // tests/fixtures/<name>
std::string test_source_dir();                          // the checkout the tests were built from

}  // namespace cvq::test

#define CVQ_NEED_FILE(var, path_expr)                                            \
  const std::string var = (path_expr);                                           \
  if (!std::filesystem::exists(var)) {                                           \
    if (::cvq::test::in_ci()) {                                                  \
      FAIL() << var << " is missing (CI must install it with scripts/setup.sh)"; \
    } else {                                                                     \
      GTEST_SKIP() << var << " is missing; run scripts/setup.sh";                \
    }                                                                            \
  }
