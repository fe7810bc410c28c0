#pragma once
// Checks of the engine against a llama.cpp fixture (scripts/make-llamacpp-fixture.py): identical
// token ids, and on the first 8,192 WikiText-2 tokens (windows of 2,048, fresh cache each) top-1
// agreement and perplexity. Shared by the CI integration tests and the `large` ones.
#include <string>

namespace cvq::test {

struct LlamaCppAgreement {
  double top1 = 0.0;     // fraction of positions with the same argmax
  double ppl_rel = 0.0;  // |ours - llama.cpp| / llama.cpp
  double ours = 0.0, reference = 0.0;
  // llama.cpp against itself (flash attention on vs the fixture's off), when the fixture has it
  // (scripts/llamacpp-self-agreement.py): the noise floor of top-1 agreement; 0 when absent.
  double llamacpp_self_top1 = 0.0;
};

// gtest assertions inside; model_path must exist (callers use CVQ_NEED_FILE).
void expect_identical_tokenization(const std::string& model_path, const std::string& fixture_name, int min_cases);
LlamaCppAgreement wikitext_agreement(const std::string& model_path, const std::string& fixture_name,
                                     bool llamacpp_arithmetic);

}  // namespace cvq::test
