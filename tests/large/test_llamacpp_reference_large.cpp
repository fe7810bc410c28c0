// The llama.cpp checks on Qwen2.5-Coder-1.5B (label `large`: `scripts/test.sh --large`; the model
// comes from `scripts/get-model.sh qwen2.5-coder-1.5b`). Same checks as tests/integration.
#include <gtest/gtest.h>

#include "support/llamacpp_reference_check.h"
#include "support/test_env.h"

namespace cvq {
namespace {

constexpr const char* kFixture = "llamacpp_reference_qwen2.5-coder-1.5b.json";

TEST(LlamaCppReferenceQwen15B, TokenizationIsIdentical) {
  CVQ_NEED_FILE(model_path, test::known_model_path("qwen2.5-coder-1.5b"));
  test::expect_identical_tokenization(model_path, kFixture, 25);
}

TEST(LlamaCppReferenceQwen15B, WikiText8kTopOneAgreementAndPerplexity) {
  CVQ_NEED_FILE(model_path, test::known_model_path("qwen2.5-coder-1.5b"));
  CVQ_NEED_FILE(wiki, test::data_file("text/wikitext-2-raw/wiki.test.raw"));
  const auto a = test::wikitext_agreement(model_path, kFixture, false);
  // Held to llama.cpp's agreement with itself (flash attention on vs off), as for the 0.5B.
  ASSERT_GT(a.llamacpp_self_top1, 0.9)
      << "fixture lacks flash_attn_top1_agreement (scripts/llamacpp-self-agreement.py)";
  EXPECT_GE(a.top1, a.llamacpp_self_top1 - 0.002);
  EXPECT_LE(a.ppl_rel, 0.005);
}

}  // namespace
}  // namespace cvq
