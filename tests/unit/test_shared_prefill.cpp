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

// A cache that fails once it holds `limit` tokens in layer 0 (wraps a real fp16 cache).
class FailingCache : public KvCache {
 public:
  FailingCache(const KvGeometry& g, int64_t limit) : KvCache(g), inner_(make_kv_cache("fp16", g)), limit_(limit) {}
  void append(int layer, const float* k, const float* v, const int32_t* positions, int n) override {
    if (layer == 0 && inner_->n_tokens(0) + n > limit_) throw Error("failing cache: full");
    inner_->append(layer, k, v, positions, n);
  }
  void attend(int layer, const float* q, const int32_t* positions, int n, float* out) override {
    inner_->attend(layer, q, positions, n, out);
  }
  size_t bytes() const override { return inner_->bytes(); }
  int64_t n_tokens(int layer) const override { return inner_->n_tokens(layer); }
  void clear() override { inner_->clear(); }
  std::string spec() const override { return "failing"; }

 private:
  std::unique_ptr<KvCache> inner_;
  int64_t limit_;
};

// Batched decode runs the sequences' attention in parallel: an error in one of them reaches the
// caller as that error (not std::terminate from a worker thread), whichever thread ran it.
TEST(SharedPrefill, BatchedDecodeRethrowsASequencesError) {
  test::TinyModelSpec spec;
  const std::string path =
      (std::filesystem::temp_directory_path() / ("batch_throw_" + std::to_string(::getpid()) + ".gguf")).string();
  test::write_tiny_model(path, spec);
  auto model = LlamaModel::load(path);
  std::vector<std::unique_ptr<KvCache>> owned;
  std::vector<KvCache*> caches;
  for (int i = 0; i < 4; ++i) {
    owned.push_back(i == 3 ? std::make_unique<FailingCache>(model->kv_geometry(), 1)
                           : make_kv_cache("fp16", model->kv_geometry()));
    caches.push_back(owned.back().get());
  }
  const std::vector<int32_t> tokens = {1, 2, 3, 4};
  std::vector<int32_t> positions = {0, 0, 0, 0};
  EXPECT_NO_THROW(model->forward_batch(tokens.data(), positions.data(), caches));
  positions = {1, 1, 1, 1};
  try {
    model->forward_batch(tokens.data(), positions.data(), caches);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("failing cache: full"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace cvq
