// The known-model table (src/model/known_models.cpp) and the download manifest scripts/get-model.sh
// reads (datasets/models.tsv) name the same models and files; --model NAME resolves through them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/known_models.h"
#include "model/model_paths.h"
#include "support/test_env.h"

namespace cvq {
namespace {

std::vector<std::vector<std::string>> manifest_rows() {
  std::ifstream in(test::test_source_dir() + "/datasets/models.tsv");
  EXPECT_TRUE(in.good());
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols;
    std::stringstream ss(line);
    std::string c;
    while (std::getline(ss, c, '\t')) cols.push_back(c);
    rows.push_back(cols);
  }
  return rows;
}

TEST(KnownModels, ManifestAndTableAgree) {
  const auto rows = manifest_rows();
  ASSERT_EQ(rows.size(), known_models().size());
  for (const auto& r : rows) {
    ASSERT_EQ(r.size(), 8u) << r[0];
    const KnownModel* m = find_known_model(r[0]);
    ASSERT_NE(m, nullptr) << r[0] << " is in datasets/models.tsv but not in known_models()";
    EXPECT_EQ(m->file, r[1]);
    EXPECT_EQ(r[3].size(), 64u) << "sha256 of " << r[0];
    EXPECT_GT(std::stoll(r[2]), 0);
  }
  EXPECT_NE(find_known_model(kDefaultModelName), nullptr);
}

TEST(KnownModels, NamesResolveIntoTheModelCache) {
  const std::string dir = (std::filesystem::temp_directory_path() / "cvq-known-models").string();
  std::filesystem::create_directories(dir + "/models");
  setenv("COMMVQ_HOME", dir.c_str(), 1);
  // Not installed: the error names the command that installs it.
  try {
    resolve_model_path("qwen2.5-coder-0.5b");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scripts/get-model.sh qwen2.5-coder-0.5b"), std::string::npos) << e.what();
  }
  const std::string file = dir + "/models/" + find_known_model("qwen2.5-coder-0.5b")->file;
  std::ofstream(file) << "x";
  EXPECT_EQ(resolve_model_path("qwen2.5-coder-0.5b"), file);
  EXPECT_EQ(resolve_model_path("some/other.gguf"), "some/other.gguf");  // anything else is a path
  unsetenv("COMMVQ_HOME");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(default_codebook_path("qwen2.5-coder-1.5b", 2),
            "results/codebooks/qwen2.5-coder-1.5b-commvq-2bit.safetensors");
}

}  // namespace
}  // namespace cvq
