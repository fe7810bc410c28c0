// SentencePiece-style tokenizer.json files (LLaMA-2 legacy normalizer; Metaspace "first" as in
// Mistral v0.3) against Hugging Face's own tokenization of 54 strings
// (tests/fixtures/hf_spm_tokenizers, made by scripts/make-hf-spm-fixture.py with tokenizers 0.22).
#include <gtest/gtest.h>

#include "core/json_file.h"
#include "model/hf_tokenizer.h"
#include "model/tokenizer.h"
#include "support/test_env.h"

namespace cvq {
namespace {

class HfSentencePieceTokenizer : public ::testing::TestWithParam<std::string> {};

TEST_P(HfSentencePieceTokenizer, IdsEqualHuggingFaces) {
  const std::string dir = test::fixture_path("hf_spm_tokenizers/" + GetParam());
  const nlohmann::json expected = read_json_file(test::fixture_path("hf_spm_tokenizers/expected.json"));
  const nlohmann::json& v = expected.at("variants").at(GetParam());
  const Tokenizer tok(hf_tokenizer_data(dir));
  ASSERT_TRUE(tok.is_spm());
  int cases = 0;
  for (const auto& c : v.at("tokenize")) {
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(tok.encode(text, false, c.at("special").get<bool>()), c.at("ids").get<std::vector<int32_t>>())
        << "text: '" << text << "' special " << c.at("special");
    ++cases;
  }
  EXPECT_GE(cases, 50);
  EXPECT_TRUE(tok.add_bos_default());
  EXPECT_EQ(tok.encode("Hello world", true, true), v.at("with_special").get<std::vector<int32_t>>());
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
}

INSTANTIATE_TEST_SUITE_P(Variant, HfSentencePieceTokenizer, ::testing::Values("legacy", "metaspace"));

}  // namespace
}  // namespace cvq
