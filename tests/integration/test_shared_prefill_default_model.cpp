// Shared prefill and batched decoding on the default model (SmolLM2-135M, real weights and text):
// every method of the grid, given one prefill and decoded in one batch, gives what it gives alone,
// bit for bit (tests/support/shared_prefill_check.h).
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "core/progress.h"
#include "core/text_source.h"
#include "model/llama_model.h"
#include "support/shared_prefill_check.h"
#include "support/test_env.h"

namespace cvq {
namespace {

TEST(SharedPrefillDefaultModel, EveryMethodAsIfAlone) {
  CVQ_NEED_FILE(model_path, test::model_path());
  CVQ_NEED_FILE(wiki, test::data_file("text/wikitext-2-raw/wiki.test.raw"));
  Progress::set_quiet(true);
  auto model = LlamaModel::load(model_path);
  std::vector<int32_t> tokens = model->tokenizer().encode(read_text_file(wiki), true, false);
  ASSERT_GT(tokens.size(), 1200u);
  const std::vector<int32_t> calib(tokens.begin(), tokens.begin() + 256);
  const std::vector<int32_t> prompt(tokens.begin() + 600, tokens.begin() + 900);
  const std::string prefix =
      (std::filesystem::temp_directory_path() / ("shared_prefill_default_" + std::to_string(::getpid()))).string();
  const std::vector<std::string> specs = test::every_method_spec(*model, calib, prefix, 32);
  test::expect_shared_equals_separate(*model, specs, {}, prompt, 24);
  for (const char* ext : {".kvquant.safetensors", ".cb2.safetensors", ".cb1.safetensors"})
    std::filesystem::remove(prefix + ext);
}

}  // namespace
}  // namespace cvq
