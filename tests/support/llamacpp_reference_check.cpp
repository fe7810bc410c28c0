#include "support/llamacpp_reference_check.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/text_source.h"
#include "model/llama_model.h"
#include "support/test_env.h"
#include "tasks/perplexity.h"

namespace cvq::test {
namespace {

nlohmann::json load_fixture(const std::string& name) {
  std::ifstream in(fixture_path(name));
  EXPECT_TRUE(in.good()) << fixture_path(name);
  return nlohmann::json::parse(in);
}

}  // namespace

void expect_identical_tokenization(const std::string& model_path, const std::string& fixture_name, int min_cases) {
  auto fixture = load_fixture(fixture_name);
  auto model = LlamaModel::load(model_path);
  EXPECT_EQ(model->tokenizer().add_bos_default(), fixture.at("add_bos_token").get<bool>());
  int checked = 0;
  for (const auto& item : fixture.at("tokenize")) {
    const std::string text = item.at("text");
    const auto expected = item.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(model->tokenizer().encode(text, false, item.value("special", true)), expected) << "text: " << text;
    ++checked;
  }
  EXPECT_GE(checked, min_cases);
}

LlamaCppAgreement wikitext_agreement(const std::string& model_path, const std::string& fixture_name,
                                     bool llamacpp_arithmetic) {
  auto fixture = load_fixture(fixture_name);
  const auto& ref = fixture.at("wikitext");
  auto model = LlamaModel::load(model_path);
  if (llamacpp_arithmetic) model->use_llamacpp_arithmetic();
  std::vector<int32_t> tokens =
      model->tokenizer().encode(read_text_file(data_file("text/wikitext-2-raw/wiki.test.raw")), false, false);
  const auto expected_tokens = ref.at("token_ids_first_8192").get<std::vector<int32_t>>();
  EXPECT_GE(tokens.size(), expected_tokens.size());
  tokens.resize(expected_tokens.size());
  EXPECT_EQ(tokens, expected_tokens) << "tokenizer differs from llama.cpp on WikiText-2";

  PerplexityOptions opt;
  opt.ctx = static_cast<int>(ref.value("window", 2048));
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
  EXPECT_EQ(ours.n_scored, ref_scored);
  EXPECT_EQ(ours.top1.size(), ref_top1.size());
  LlamaCppAgreement a;
  int64_t agree = 0;
  const size_t n = std::min(ours.top1.size(), ref_top1.size());
  for (size_t i = 0; i < n; ++i) agree += ours.top1[i] == ref_top1[i];
  a.top1 = n ? static_cast<double>(agree) / static_cast<double>(n) : 0.0;
  a.reference = std::exp(ref_nll / static_cast<double>(ref_scored));
  a.ours = ours.perplexity;
  a.ppl_rel = std::abs(a.ours - a.reference) / a.reference;
  a.llamacpp_self_top1 = ref.value("flash_attn_top1_agreement", 0.0);
  std::printf(
      "%s: top-1 agreement %.4f (%lld/%zu; llama.cpp vs itself with flash attention: %.4f); perplexity ours %.4f "
      "llama.cpp %.4f (rel diff %.5f)\n",
      fixture_name.c_str(), a.top1, static_cast<long long>(agree), n, a.llamacpp_self_top1, a.ours, a.reference,
      a.ppl_rel);
  return a;
}

}  // namespace cvq::test
