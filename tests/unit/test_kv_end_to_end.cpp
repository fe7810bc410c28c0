// Every KV method inside the real forward pass of a tiny random llama (both RoPE layouts),
// perplexity-style: windows fed in chunks shorter than the full-precision window, so attention reads
// older tokens back from the compressed stores. q8_0 must be close to fp16; native and simulated
// execution must agree; 1-bit KIVI must be further from fp16 than 4-bit KIVI.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>

#include <unistd.h>

#include "commvq/commvq_codebook.h"
#include "commvq/kv_methods.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/llama_model.h"
#include "support/tiny_model.h"
#include "tasks/perplexity.h"

namespace cvq {
namespace {

TEST(KvEndToEnd, PerplexityThroughEveryMethod) {
  Progress::set_quiet(true);
  for (const char* arch : {"llama", "qwen2"}) {
    const test::TinyModelSpec spec = test::kv_test_spec(arch);
    const std::string path = (std::filesystem::temp_directory_path() /
                              (std::string("kv_e2e_") + arch + "_" + std::to_string(::getpid()) + ".gguf"))
                                 .string();
    test::write_tiny_model(path, spec);
    auto model = LlamaModel::load(path);
    std::vector<int32_t> tokens(384);
    std::mt19937 rng(5);
    // Some structure so attention matters: a repeated random phrase with noise.
    std::vector<int32_t> phrase(40);
    for (auto& t : phrase) t = static_cast<int32_t>(rng() % 256);
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = rng() % 4 == 0 ? static_cast<int32_t>(rng() % 256) : phrase[i % phrase.size()];

    auto ppl = [&](const std::string& kv) {
      PerplexityOptions o;
      o.ctx = 384;
      o.chunk = 24;
      o.kv_spec = kv;
      PerplexityResult r = run_perplexity(*model, tokens, o);
      EXPECT_TRUE(std::isfinite(r.perplexity)) << kv;
      EXPECT_GT(r.kv_bytes_at_ctx, 0u) << kv;
      return r.perplexity;
    };
    const double fp16 = ppl("fp16");
    const double q8 = ppl("q8_0");
    EXPECT_NEAR(q8, fp16, 2e-3 * fp16) << arch;
    EXPECT_NEAR(ppl("bf16"), fp16, 1e-2 * fp16) << arch;
    const double q4 = ppl("q4_0");
    EXPECT_NEAR(q4, fp16, 5e-2 * fp16) << arch;
    const double k4 = ppl("kivi:k=4,v=4,group=32,window=64");
    const double k1 = ppl("kivi:k=1,v=1,group=32,window=64");
    EXPECT_NEAR(ppl("kivi:k=4,v=4,group=32,window=64,mode=simulated"), k4, 1e-3 * k4) << arch;
    EXPECT_NEAR(ppl("kivi:k=1,v=1,group=32,window=64,mode=simulated"), k1, 1e-3 * k1) << arch;
    EXPECT_NEAR(ppl("q4_0:mode=simulated"), q4, 1e-3 * q4) << arch;
    EXPECT_LT(std::fabs(k4 - fp16), std::fabs(k1 - fp16))
        << arch << ": fp16 " << fp16 << " kivi4 " << k4 << " kivi1 " << k1;
    for (const char* s : {"kivi:k=2,v=2,group=32,window=64", "kivi:k=2,v=1,group=16,window=32"}) ppl(s);
    std::filesystem::remove(path);
  }
}

}  // namespace
}  // namespace cvq

namespace cvq {
namespace {

// The forward pass gives the same logits, bit for bit, whatever the thread count: work is split into
// parts fixed by the data (attention's token splits included), and reductions run in part order.
TEST(KvEndToEnd, LogitsDoNotDependOnTheThreadCount) {
  Progress::set_quiet(true);
  test::TinyModelSpec spec;
  spec.n_ctx = 2048;
  const std::string path =
      (std::filesystem::temp_directory_path() / ("kv_threads_" + std::to_string(::getpid()) + ".gguf")).string();
  test::write_tiny_model(path, spec);
  auto model = LlamaModel::load(path);
  // Long enough for the attention to split the context across tasks (more than one 512-token split).
  const int n = 1600;
  std::vector<int32_t> tokens(n), pos(n);
  for (int i = 0; i < n; ++i) tokens[i] = (i * 131 + 7) % 256, pos[i] = i;
  auto run = [&](const std::string& kv, int threads) {
    ThreadPool::set_global_threads(threads);
    auto cache = make_kv_cache(kv, model->kv_geometry());
    std::vector<float> all;
    for (int s = 0; s < n; s += 400) {  // prefill chunks, then single-token decode steps
      const int m = std::min(400, n - s);
      auto lg = model->forward(tokens.data() + s, pos.data() + s, m, *cache, LlamaModel::Logits::All);
      all.insert(all.end(), lg.begin(), lg.end());
    }
    return all;
  };
  const std::string cb = path + ".cb.safetensors";
  random_commvq_codebook(model->kv_geometry(), 2, true, 7).save(cb);
  for (const std::string& kv :
       {std::string("fp16"), std::string("kivi:k=2,v=2,group=16,window=128"), "commvq:bits=2,codebook=" + cb}) {
    const auto one = run(kv, 1), two = run(kv, 2), three = run(kv, 3);
    ASSERT_EQ(one.size(), two.size());
    EXPECT_TRUE(one == two) << kv << ": 1 vs 2 threads";
    EXPECT_TRUE(one == three) << kv << ": 1 vs 3 threads";
  }
  ThreadPool::set_global_threads(0);
  std::filesystem::remove(path);
  std::filesystem::remove(cb);
}

}  // namespace
}  // namespace cvq
