// One prefill for every KV method and one batched decode (kv/shared_prefill_cache.h,
// LlamaModel::forward_batch, generate_greedy_batch) on a tiny random llama, both RoPE layouts: the
// same logits and generations as each method alone, bit for bit; methods whose prefill is another
// arithmetic (bf16 window, simulated mode, a sink) prefill alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include <unistd.h>

#include "commvq/kv_methods.h"
#include "core/error.h"
#include "core/progress.h"
#include "kv/kv_cache.h"
#include "kv/shared_prefill_cache.h"
#include "model/llama_model.h"
#include "support/shared_prefill_check.h"
#include "support/tiny_model.h"

namespace cvq {
namespace {

TEST(SharedPrefill, EveryMethodAsIfAloneOnATinyModel) {
  Progress::set_quiet(true);
  for (const char* arch : {"llama", "qwen2"}) {
    const test::TinyModelSpec spec = test::kv_test_spec(arch);
    const std::string prefix = (std::filesystem::temp_directory_path() /
                                ("shared_prefill_" + std::string(arch) + "_" + std::to_string(::getpid())))
                                   .string();
    test::write_tiny_model(prefix + ".gguf", spec);
    auto model = LlamaModel::load(prefix + ".gguf");
    std::mt19937 rng(3);
    std::vector<int32_t> prompt(300);
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % 256);
    std::vector<std::string> specs = test::every_method_spec(*model, prompt, prefix, 32);
    const std::string cb = specs.back().substr(specs.back().find("codebook=") + 9);
    const std::vector<std::string> own = {"bf16", "kivi:k=2,v=2,group=32,window=32,mode=simulated",
                                          "commvq:bits=1,window=32,sink=4,codebook=" + cb.substr(0, cb.find(','))};
    specs.insert(specs.end(), own.begin(), own.end());
    test::expect_shared_equals_separate(*model, specs, own, prompt, 40);
    for (const char* ext : {".gguf", ".kvquant.safetensors", ".cb2.safetensors", ".cb1.safetensors"})
      std::filesystem::remove(prefix + ext);
  }
}

TEST(SharedPrefill, RefusesCachesThatWouldNotAttendAlike) {
  test::TinyModelSpec spec;
  const std::string path =
      (std::filesystem::temp_directory_path() / ("shared_refuse_" + std::to_string(::getpid()) + ".gguf")).string();
  test::write_tiny_model(path, spec);
  auto model = LlamaModel::load(path);
  auto fp16 = make_kv_cache("fp16", model->kv_geometry());
  auto bf16 = make_kv_cache("bf16", model->kv_geometry());
  auto sim = make_kv_cache("fp16:mode=simulated", model->kv_geometry());
  EXPECT_THROW(SharedPrefillCache({fp16.get(), bf16.get()}), Error);
  EXPECT_THROW(SharedPrefillCache({fp16.get(), sim.get()}), Error);
  const int32_t tok = 1, pos = 0;
  model->forward(&tok, &pos, 1, *fp16, LlamaModel::Logits::None);
  auto other = make_kv_cache("fp16", model->kv_geometry());
  EXPECT_THROW(SharedPrefillCache({fp16.get(), other.get()}), Error);  // not empty
  const auto groups = prefill_groups({fp16.get(), bf16.get(), other.get(), sim.get()});
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0], (std::vector<size_t>{0, 2}));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace cvq
