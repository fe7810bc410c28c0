// The engine against llama.cpp on the same GGUFs (fixtures made once by
// scripts/make-llamacpp-fixture.py with llama-cpp-python; see each fixture's "made_with"): the
// default model (SmolLM2-135M) and Qwen2.5-Coder-0.5B here; Qwen2.5-Coder-1.5B in tests/large.
#include <gtest/gtest.h>

#include "support/llamacpp_reference_check.h"
#include "support/test_env.h"

namespace cvq {
namespace {

TEST(LlamaCppReference, TokenizationIsIdentical) {
  CVQ_NEED_FILE(model_path, test::model_path());
  test::expect_identical_tokenization(model_path, "llamacpp_reference.json", 20);
}

TEST(LlamaCppReference, WikiText8kTopOneAgreementAndPerplexity) {
  CVQ_NEED_FILE(model_path, test::model_path());
  CVQ_NEED_FILE(wiki, test::data_file("text/wikitext-2-raw/wiki.test.raw"));
  const auto a = test::wikitext_agreement(model_path, "llamacpp_reference.json", false);
  // The engine's own arithmetic (fp32 activations) is as correct, but llama.cpp rounds activations
  // to 8-bit blocks and 1-ulp differences cross those rounding boundaries, after which the two
  // differ by quantization noise (results/llamacpp_divergence.md); llama.cpp itself, flash
  // attention on vs off, agrees with its own fixture on 97.1% of positions.
  EXPECT_GE(a.top1, 0.96);
  EXPECT_LE(a.ppl_rel, 0.005);
}

// `--arith llamacpp`: llama.cpp's arithmetic reproduced (kernels/cpu/ggml_arith.h).
TEST(LlamaCppReference, WikiText8kWithLlamaCppArithmetic) {
  CVQ_NEED_FILE(model_path, test::model_path());
  CVQ_NEED_FILE(wiki, test::data_file("text/wikitext-2-raw/wiki.test.raw"));
  const auto a = test::wikitext_agreement(model_path, "llamacpp_reference.json", true);
  // The same float operations as llama.cpp's CPU backend: the same argmax everywhere.
  EXPECT_GE(a.top1, 0.99);
  EXPECT_LE(a.ppl_rel, 1e-6);
}

TEST(LlamaCppReferenceQwen05B, TokenizationIsIdentical) {
  CVQ_NEED_FILE(model_path, test::known_model_path("qwen2.5-coder-0.5b"));
  test::expect_identical_tokenization(model_path, "llamacpp_reference_qwen2.5-coder-0.5b.json", 25);
}

TEST(LlamaCppReferenceQwen05B, WikiText8kTopOneAgreementAndPerplexity) {
  CVQ_NEED_FILE(model_path, test::known_model_path("qwen2.5-coder-0.5b"));
  CVQ_NEED_FILE(wiki, test::data_file("text/wikitext-2-raw/wiki.test.raw"));
  const auto a = test::wikitext_agreement(model_path, "llamacpp_reference_qwen2.5-coder-0.5b.json", false);
  // Measured 97.94% (8019/8188), perplexity 0.04% apart. Short of 98% because llama.cpp rounds
  // activations to 8 bits (Q8_K blocks for its K-quant dot products) where this engine keeps fp32:
  // near-ties flip either way. llama.cpp agrees with itself (flash attention on vs off) on only
  // 97.37% of these positions, so the engine is held to that noise floor, not to 98%.
  ASSERT_GT(a.llamacpp_self_top1, 0.9)
      << "fixture lacks flash_attn_top1_agreement (scripts/llamacpp-self-agreement.py)";
  EXPECT_GE(a.top1, a.llamacpp_self_top1 - 0.002);
  EXPECT_LE(a.ppl_rel, 0.005);
}

}  // namespace
}  // namespace cvq
