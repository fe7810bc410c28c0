// Greedy decoding's token-id end rules (EndRules, as Hugging Face generate() applies eos_token_id and
// min_length — LongBench's samsum): a scripted "model" whose logits favour chosen tokens at each step,
// with the byte-level tokenizer of the tiny test model (token b = byte b, eos = 2).
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>

#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "support/tiny_model.h"
#include "tasks/generation.h"

namespace cvq {
namespace {

class GenerationRules : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ =
        (std::filesystem::temp_directory_path() / ("cvq_gen_rules_" + std::to_string(::getpid()) + ".gguf")).string();
    test::write_tiny_model(path_, test::TinyModelSpec{});
    model_ = LlamaModel::load(path_);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  // Step s's logits: script[s][0] scores 3, script[s][1] scores 2, everything else 0.
  GenerationResult run(const std::vector<std::vector<int32_t>>& script, const EndRules& rules, int max_new = 6) {
    const int n_vocab = model_->config().n_vocab;
    int step = 0;
    auto forward = [&](const int32_t*, const int32_t*, int) {
      std::vector<float> lg(n_vocab, 0.0f);
      const auto& s = script.at(std::min<size_t>(step++, script.size() - 1));
      lg[s[0]] = 3.0f;
      lg[s[1]] = 2.0f;
      return lg;
    };
    return greedy_decode(forward, model_->tokenizer(), n_vocab, 256, {65, 66}, max_new, {}, {}, rules);
  }

  std::string path_;
  std::unique_ptr<LlamaModel> model_;
};

constexpr int32_t kNewline = '\n', kEos = 2, kA = 'a', kB = 'b';

TEST_F(GenerationRules, EndTokenIsMaskedFirstThenEnds) {
  ASSERT_EQ(model_->tokenizer().encode("\n", false, false).back(), kNewline);
  EndRules samsum{{kNewline}, 1};
  // Step 0 prefers the newline (masked: 'a' is taken), step 1 produces it: the text ends with it.
  GenerationResult g = run({{kNewline, kA}, {kNewline, kB}, {kB, kA}}, samsum);
  EXPECT_EQ(g.text, "a\n");
  EXPECT_TRUE(g.hit_stop);
  EXPECT_FALSE(g.hit_eog);
  // End-of-generation is masked at the first step too.
  g = run({{kEos, kB}, {kEos, kA}}, samsum);
  EXPECT_EQ(g.text, "b");
  EXPECT_TRUE(g.hit_eog);
}

TEST_F(GenerationRules, WithoutRulesTheNewlineIsAnOrdinaryToken) {
  const GenerationResult g = run({{kNewline, kA}, {kA, kB}, {kEos, kA}}, EndRules{});
  EXPECT_EQ(g.text, "\na");
  EXPECT_TRUE(g.hit_eog);
  // An end id with no minimum ends at once.
  const GenerationResult h = run({{kNewline, kA}}, EndRules{{kNewline}, 0});
  EXPECT_EQ(h.text, "\n");
  EXPECT_EQ(h.generated_tokens, 1);
}

}  // namespace
}  // namespace cvq
