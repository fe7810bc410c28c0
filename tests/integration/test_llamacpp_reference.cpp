// The engine against llama.cpp on the default GGUF (fixture made once by
// scripts/make-llamacpp-fixture.py with llama-cpp-python; see the fixture's "made_with").
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kv/kv_cache.h"
#include "model/llama_model.h"
#include "support/test_env.h"
#include "tasks/perplexity.h"
#include "tasks/text_source.h"

namespace cvq {
namespace {

nlohmann::json load_fixture() {
  std::ifstream in(test::fixture_path("llamacpp_reference.json"));
  return nlohmann::json::parse(in);
}

TEST(LlamaCppReference, TokenizationIsIdentical) {
  CVQ_NEED_FILE(model_path, test::model_path());
  auto fixture = load_fixture();
  auto model = LlamaModel::load(model_path);
  EXPECT_EQ(model->tokenizer().add_bos_default(), fixture.at("add_bos_token").get<bool>());
  int checked = 0;
  for (const auto& item : fixture.at("tokenize")) {
    const std::string text = item.at("text");
    const auto expected = item.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(model->tokenizer().encode(text, false, item.value("special", true)), expected) << "text: " << text;
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

void check_wikitext(bool llamacpp_arithmetic) {
  CVQ_NEED_FILE(model_path, test::model_path());
  CVQ_NEED_FILE(wiki, test::data_file("text/wikitext-2-raw/wiki.test.raw"));
  auto fixture = load_fixture();
  const auto& ref = fixture.at("wikitext");
  auto model = LlamaModel::load(model_path);
  if (llamacpp_arithmetic) model->use_llamacpp_arithmetic();
  std::vector<int32_t> tokens = model->tokenizer().encode(read_text_file(wiki), false, false);
  const auto expected_tokens = ref.at("token_ids_first_8192").get<std::vector<int32_t>>();
  ASSERT_GE(tokens.size(), expected_tokens.size());
  tokens.resize(expected_tokens.size());
  ASSERT_EQ(tokens, expected_tokens) << "tokenizer differs from llama.cpp on WikiText-2";

  PerplexityOptions opt;
  opt.ctx = 2048;
  opt.keep_top1 = true;
  if (llamacpp_arithmetic) opt.kv_spec = "fp16:arith=llamacpp";
  PerplexityResult ours = run_perplexity(*model, tokens, opt);

  std::vector<int32_t> ref_top1;
  double ref_nll = 0;
  int64_t ref_scored = 0;
  for (const auto& w : ref.at("windows")) {
    auto t = w.at("top1").get<std::vector<int32_t>>();
    ref_top1.insert(ref_top1.end(), t.begin(), t.end());
    ref_nll += w.at("nll_sum").get<double>();
    ref_scored += w.at("n_scored").get<int64_t>();
  }
  ASSERT_EQ(ours.n_scored, ref_scored);
  ASSERT_EQ(ours.top1.size(), ref_top1.size());
  int64_t agree = 0;
  for (size_t i = 0; i < ref_top1.size(); ++i) agree += ours.top1[i] == ref_top1[i];
  const double agreement = static_cast<double>(agree) / static_cast<double>(ref_top1.size());
  const double ref_ppl = std::exp(ref_nll / static_cast<double>(ref_scored));
  const double rel = std::abs(ours.perplexity - ref_ppl) / ref_ppl;
  std::printf("top-1 agreement %.4f (%lld/%zu); perplexity ours %.4f llama.cpp %.4f (rel diff %.5f)\n", agreement,
              static_cast<long long>(agree), ref_top1.size(), ours.perplexity, ref_ppl, rel);
  if (llamacpp_arithmetic) {
    // The same float operations as llama.cpp's CPU backend: the same argmax everywhere.
    EXPECT_GE(agreement, 0.99);
    EXPECT_LE(rel, 1e-6);
  } else {
    // The engine's own arithmetic (fp32 activations) is as correct, but llama.cpp rounds activations
    // to 8-bit blocks and 1-ulp differences cross those rounding boundaries, after which the two
    // differ by quantization noise (results/llamacpp_divergence.md); llama.cpp itself, flash
    // attention on vs off, agrees with its own fixture on 97.1% of positions.
    EXPECT_GE(agreement, 0.96);
    EXPECT_LE(rel, 0.005);
  }
}

TEST(LlamaCppReference, WikiText8kTopOneAgreementAndPerplexity) { check_wikitext(false); }

// `--arith llamacpp`: llama.cpp's arithmetic reproduced (kernels/cpu/ggml_arith.h).
TEST(LlamaCppReference, WikiText8kWithLlamaCppArithmetic) { check_wikitext(true); }

}  // namespace
}  // namespace cvq
