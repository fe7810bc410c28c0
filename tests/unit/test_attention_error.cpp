// tasks/attention_error.h on a tiny random llama: the reference against itself is exactly 0 at every
// layer, fewer bits give larger errors, a method's numbers do not depend on the others measured beside
// it, and a --from past the text is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include <unistd.h>

#include "core/error.h"
#include "model/llama_model.h"
#include "support/tiny_model.h"
#include "tasks/attention_error.h"

namespace cvq {
namespace {

TEST(AttentionError, ZeroForTheReferenceOrderedByBitsIndependentOfOthers) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("attn_err_" + std::to_string(::getpid()) + ".gguf")).string();
  test::write_tiny_model(path, test::kv_test_spec("qwen2"));
  auto model = LlamaModel::load(path);
  std::mt19937 rng(5);
  std::vector<int32_t> tokens(200);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 256);
  AttentionErrorOptions o;
  o.chunk = 16;
  o.from = 64;
  const std::vector<std::string> specs = {"fp16", "q8_0", "kivi:k=2,v=2,group=32,window=32",
                                          "kivi:k=1,v=1,group=32,window=32"};
  const std::vector<AttentionError> all = measure_attention_error(*model, tokens, specs, o);
  ASSERT_EQ(all.size(), specs.size());
  const size_t L = static_cast<size_t>(model->config().n_layers);
  for (const AttentionError& r : all) ASSERT_EQ(r.layer_rel.size(), L);
  for (double e : all[0].layer_rel) EXPECT_EQ(e, 0.0);
  for (const AttentionError& r : all) ASSERT_EQ(r.layer_bias_share.size(), L);
  for (size_t m = 1; m < all.size(); ++m)
    for (double b : all[m].layer_bias_share) EXPECT_TRUE(b > 0.0 && b <= 1.0 + 1e-12) << specs[m] << " " << b;
  EXPECT_GT(all[1].mean_rel, 0.0);
  EXPECT_LT(all[1].mean_rel, all[2].mean_rel);
  EXPECT_LT(all[2].mean_rel, all[3].mean_rel);
  const std::vector<AttentionError> alone = measure_attention_error(*model, tokens, {specs[2]}, o);
  EXPECT_EQ(alone[0].layer_rel, all[2].layer_rel);
  o.from = 200;
  EXPECT_THROW(measure_attention_error(*model, tokens, {"q8_0"}, o), Error);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace cvq
