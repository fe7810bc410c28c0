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

#include "kv/kv_cache.h"
#include "model/llama_model.h"
#include "support/tiny_model.h"
#include "core/progress.h"
#include "tasks/perplexity.h"

namespace cvq {
namespace {

TEST(KvEndToEnd, PerplexityThroughEveryMethod) {
  Progress::set_quiet(true);
  for (const char* arch : {"llama", "qwen2"}) {
    test::TinyModelSpec spec;
    spec.arch = arch;
    spec.n_embd = 128;
    spec.n_head = 4;
    spec.n_head_kv = 2;  // head dim 32
    spec.n_ff = 192;
    spec.n_ctx = 512;
    const std::string path = (std::filesystem::temp_directory_path() / (std::string("kv_e2e_") + arch + "_" + std::to_string(::getpid()) + ".gguf")).string();
    test::write_tiny_model(path, spec);
    auto model = LlamaModel::load(path);
    std::vector<int32_t> tokens(384);
    std::mt19937 rng(5);
    // Some structure so attention matters: a repeated random phrase with noise.
    std::vector<int32_t> phrase(40);
    for (auto& t : phrase) t = static_cast<int32_t>(rng() % 256);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = rng() % 4 == 0 ? static_cast<int32_t>(rng() % 256) : phrase[i % phrase.size()];

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
    EXPECT_LT(std::fabs(k4 - fp16), std::fabs(k1 - fp16)) << arch << ": fp16 " << fp16 << " kivi4 " << k4 << " kivi1 " << k1;
    for (const char* s : {"kivi:k=2,v=2,group=32,window=64", "kivi:k=2,v=1,group=16,window=32"}) ppl(s);
    std::filesystem::remove(path);
  }
}

}  // namespace
}  // namespace cvq
