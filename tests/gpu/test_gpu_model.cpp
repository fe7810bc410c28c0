// The GPU forward vs the CPU forward: logits on tiny random models of both RoPE layouts (weights
// stored as fp16, so both backends use the same weight values; the GPU rounds GEMM inputs to fp16),
// prefill == token-by-token decode on the GPU, and perplexity of the default model on WikiText-2
// within 0.1% of the CPU's.
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "commvq/kv_methods.h"
#include "core/text_source.h"
#include "gpu/gpu_kv_cache.h"
#include "gpu/gpu_llama_model.h"
#include "gpu/gpu_perplexity.h"
#include "gpu_test_util.h"
#include "kv/kv_cache.h"
#include "model/llama_model.h"
#include "support/test_env.h"
#include "support/tiny_model.h"
#include "tasks/data_paths.h"
#include "tasks/perplexity.h"

namespace cvq {
namespace {

std::string tiny_path(const std::string& tag) {
  return (std::filesystem::temp_directory_path() / ("commvq-gpu-" + tag + "-" + std::to_string(::getpid()) + ".gguf"))
      .string();
}

class GpuForward : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuForward, LogitsMatchCpuAndDecodeMatchesPrefill) {
  CVQ_NEED_GPU();
  test::TinyModelSpec spec;
  spec.arch = GetParam();
  spec.weight_type = GgmlType::F16;
  const std::string path = tiny_path(spec.arch);
  test::write_tiny_model(path, spec);
  auto cpu = LlamaModel::load(path);
  auto gpu_model = gpu::GpuLlamaModel::upload(*cpu);
  std::vector<int32_t> toks{1, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 200, 17};
  const int n = static_cast<int>(toks.size());
  std::vector<int32_t> pos(toks.size());
  for (int i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = i;
  auto cache = make_kv_cache("fp16", cpu->kv_geometry());
  const auto want = cpu->forward(toks.data(), pos.data(), n, *cache, LlamaModel::Logits::All);
  gpu::GpuFp16Cache gcache(gpu_model->kv_geometry(), 64);
  const auto got = gpu_model->forward(toks.data(), pos.data(), n, gcache, LlamaModel::Logits::All);
  // fp16 rounding of the activations at every GEMM input (2^-11 relative each): 5e-3 of the
  // largest |logit|. A wrong rotation, mask or head mapping moves logits by O(that scale).
  test::expect_close(got, want, 5e-3 * test::max_abs(want), 0.0, "logits " + spec.arch);

  gpu::GpuFp16Cache step_cache(gpu_model->kv_geometry(), 64);
  const int V = gpu_model->config().n_vocab;
  for (int i = 0; i < n; ++i) {
    const auto row = gpu_model->forward(&toks[static_cast<size_t>(i)], &pos[static_cast<size_t>(i)], 1, step_cache,
                                        LlamaModel::Logits::Last);
    const std::vector<float> prefill_row(got.begin() + static_cast<std::ptrdiff_t>(i) * V,
                                         got.begin() + static_cast<std::ptrdiff_t>(i + 1) * V);
    // Different batch sizes may take different cuBLAS algorithms (and fp16 roundings of the GEMM
    // inputs can flip): 2e-3 of the largest |logit|. A wrong position or cache bug moves logits by
    // O(that scale).
    test::expect_close(row, prefill_row, 2e-3 * test::max_abs(prefill_row), 0.0, "decode step " + std::to_string(i));
  }
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Arches, GpuForward, ::testing::Values("llama", "qwen2"));

TEST(GpuPerplexity, DefaultModelWithinPointOnePercentOfCpu) {
  CVQ_NEED_GPU();
  CVQ_NEED_FILE(model_path, test::model_path());
  CVQ_NEED_FILE(wiki, test::data_file("text/wikitext-2-raw/wiki.test.raw"));
  auto model = LlamaModel::load(model_path);
  const Tokenizer& tok = model->tokenizer();
  const std::vector<int32_t> tokens = tok.encode(read_text_file(wiki), tok.add_bos_default(), false);
  PerplexityOptions po;
  po.ctx = 512;
  po.chunk = 512;
  po.max_tokens = 1024;
  const PerplexityResult cpu = run_perplexity(*model, tokens, po);
  auto gpu_model = gpu::GpuLlamaModel::upload(*model);
  const PerplexityResult gpu = gpu::run_perplexity_gpu(*gpu_model, tokens, po);
  ASSERT_EQ(gpu.n_scored, cpu.n_scored);
  EXPECT_GT(cpu.perplexity, 1.0);
  EXPECT_LT(std::fabs(gpu.perplexity - cpu.perplexity) / cpu.perplexity, 1e-3)
      << "cpu " << cpu.perplexity << " gpu " << gpu.perplexity;
}

}  // namespace
}  // namespace cvq
