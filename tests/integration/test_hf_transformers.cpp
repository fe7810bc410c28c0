// The Hugging Face loader against transformers itself (tests/fixtures/hf_reference_<model>.json,
// made by scripts/make-hf-fixture.py): a GGUF model is converted to an HF folder here (`convert`),
// loaded back, and its token ids, logits and perplexity compared with what transformers computed in
// fp32 on the same folder. Where transformers' own folder of the model (its GGUF loader +
// save_pretrained) is on this machine, it is checked the same way.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "commvq/kv_methods.h"
#include "core/json_file.h"
#include "core/progress.h"
#include "kv/kv_cache.h"
#include "model/hf_export.h"
#include "model/llama_model.h"
#include "support/fp32_reference_cache.h"
#include "support/test_env.h"

namespace cvq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// kv: "fp16" (the engine's reference cache) or "fp32" (tests/support/fp32_reference_cache.h).
std::vector<float> all_logits(const LlamaModel& m, const std::vector<int32_t>& tokens, const std::string& kv = "fp16") {
  std::unique_ptr<KvCache> cache;
  if (kv == "fp32")
    cache = std::make_unique<test::Fp32ReferenceCache>(m.kv_geometry());
  else
    cache = make_kv_cache(kv, m.kv_geometry());
  std::vector<int32_t> pos(tokens.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
  return m.forward(tokens.data(), pos.data(), static_cast<int>(tokens.size()), *cache, LlamaModel::Logits::All);
}

double perplexity(const std::vector<float>& logits, const std::vector<int32_t>& tokens, size_t vocab) {
  double nll = 0;
  for (size_t p = 0; p + 1 < tokens.size(); ++p) {
    const float* l = logits.data() + p * vocab;
    const double mx = *std::max_element(l, l + vocab);
    double s = 0;
    for (size_t v = 0; v < vocab; ++v) s += std::exp(double(l[v]) - mx);
    nll -= double(l[tokens[p + 1]]) - mx - std::log(s);
  }
  return std::exp(nll / double(tokens.size() - 1));
}

// One fixture section against the folder it describes: identical token ids, top-1 agreement
// >= 99.5%, perplexity within 0.1%, and max |delta logit| / max |logit| (over each position's top-16
// and 32 probe ids) at most 1e-3. The KV cache matches the section's: fp32 K/V for plain
// transformers, the engine's fp16 cache for a section made with K/V rounded to fp16.
void expect_matches_transformers(const LlamaModel& m, const json& section) {
  int cases = 0;
  for (const json& c : section.at("tokenize")) {
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(m.tokenizer().encode(text, false, c.at("special").get<bool>()), c.at("ids").get<std::vector<int32_t>>())
        << "text: " << text;
    ++cases;
  }
  EXPECT_GE(cases, 20);

  const json& w = section.at("wikitext");
  const auto tokens = w.at("tokens").get<std::vector<int32_t>>();
  const auto probes = w.at("probe_ids").get<std::vector<int32_t>>();
  const size_t vocab = static_cast<size_t>(m.config().n_vocab);
  const std::string kv = w.value("kv_rounding", std::string("none")) == "fp16" ? "fp16" : "fp32";
  const std::vector<float> logits = all_logits(m, tokens, kv);
  int same_top1 = 0;
  double worst = 0;  // max over positions of max |delta| / max |logit|
  for (size_t p = 0; p < tokens.size(); ++p) {
    const float* l = logits.data() + p * vocab;
    const auto top = w.at("top_ids")[p].get<std::vector<int32_t>>();
    const auto top_logits = w.at("top_logits")[p].get<std::vector<double>>();
    const auto probe_logits = w.at("probe_logits")[p].get<std::vector<double>>();
    if (std::max_element(l, l + vocab) - l == top[0]) ++same_top1;
    double d = 0;
    for (size_t k = 0; k < top.size(); ++k) d = std::max(d, std::fabs(l[top[k]] - top_logits[k]));
    for (size_t k = 0; k < probes.size(); ++k) d = std::max(d, std::fabs(l[probes[k]] - probe_logits[k]));
    worst = std::max(worst, d / w.at("max_abs_logit")[p].get<double>());
  }
  const double top1 = double(same_top1) / double(tokens.size());
  const double ours = perplexity(logits, tokens, vocab), theirs = w.at("perplexity").get<double>();
  std::printf(
      "transformers (K/V %s): %zu positions, top-1 agreement %.4f, max |dlogit|/max|logit| %.2e, "
      "ppl %.5f vs %.5f\n",
      kv.c_str(), tokens.size(), top1, worst, ours, theirs);
  EXPECT_GE(top1, 0.995);
  EXPECT_LE(worst, 1e-3);
  EXPECT_LT(std::fabs(ours - theirs) / theirs, 1e-3);
}

struct HfCase {
  std::string model;  // known model name; fixture tests/fixtures/hf_reference_<model>.json
  StDtype dtype;      // what the fixture's "convert" section was made from
};

class HfTransformers : public ::testing::TestWithParam<HfCase> {};

TEST_P(HfTransformers, ConvertedFolderMatchesTransformers) {
  const HfCase& c = GetParam();
  CVQ_NEED_FILE(gguf, test::known_model_path(c.model));
  CVQ_NEED_FILE(fixture_path, test::fixture_path("hf_reference_" + c.model + ".json"));
  Progress::set_quiet(true);
  const json fixture = read_json_file(fixture_path);
  const std::string dir = (fs::temp_directory_path() / ("hf_convert_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  auto from_gguf = LlamaModel::load(gguf);
  export_hf_checkpoint(*from_gguf, dir, c.dtype);
  auto folder = LlamaModel::load(dir);
  // Against plain fp32 transformers with fp32 K/V; and the engine's own fp16 cache against
  // transformers with K (after RoPE) and V rounded to fp16 as that cache stores them (the rounding
  // alone moves Qwen's logits by up to 8.8e-3 of their range, so each side needs the other's).
  const json& sections = fixture.at("sections");
  expect_matches_transformers(*folder, sections.at("convert"));
  expect_matches_transformers(*folder, sections.at("convert_kv_fp16"));

  if (c.dtype == StDtype::F32) {
    // The folder and the GGUF are the same model (dequantized weights, Q/K rows reordered): the
    // prefill (fp32 GEMM over dequantized tiles in both) agrees to float summation order.
    const auto tokens = fixture["sections"]["convert"]["wikitext"]["tokens"].get<std::vector<int32_t>>();
    const size_t vocab = static_cast<size_t>(from_gguf->config().n_vocab);
    const double a = perplexity(all_logits(*from_gguf, tokens), tokens, vocab);
    const double b = perplexity(all_logits(*folder, tokens), tokens, vocab);
    EXPECT_LT(std::fabs(a - b) / a, 1e-4) << "GGUF " << a << " vs HF folder " << b;
  }
  fs::remove_all(dir);
}

TEST_P(HfTransformers, TransformersOwnFolderWhereInstalled) {
  const HfCase& c = GetParam();
  const char* home = std::getenv("HOME");
  const std::string dir = std::string(home ? home : "") + "/.cache/commvq-bench/hf/" + c.model + "-transformers";
  if (!fs::exists(dir + "/config.json")) {
    GTEST_SKIP() << dir << " is absent (made by scripts/make-hf-fixture.py, which needs transformers)";
  }
  CVQ_NEED_FILE(fixture_path, test::fixture_path("hf_reference_" + c.model + ".json"));
  Progress::set_quiet(true);
  const json fixture = read_json_file(fixture_path);
  expect_matches_transformers(*LlamaModel::load(dir), fixture.at("sections").at("transformers"));
}

// SmolLM2 (llama: Q/K un-permuted, tied embeddings) in f32; Qwen2.5-Coder-0.5B (qwen2: QKV bias,
// untied output, 151,936 tokens) in bf16, which halves the 2.5 GB folder the test writes.
INSTANTIATE_TEST_SUITE_P(Model, HfTransformers,
                         ::testing::Values(HfCase{"smollm2-135m", StDtype::F32},
                                           HfCase{"qwen2.5-coder-0.5b", StDtype::BF16}),
                         [](const auto& test_info) {
                           return test_info.param.model == "smollm2-135m" ? "SmolLM2" : "Qwen05B";
                         });

}  // namespace
}  // namespace cvq
