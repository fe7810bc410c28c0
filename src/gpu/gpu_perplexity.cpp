#include "gpu/gpu_perplexity.h"

#include <memory>

#include "core/error.h"
#include "gpu/gpu_kv_cache.h"
#include "gpu/gpu_llama_model.h"

namespace cvq::gpu {

PerplexityResult run_perplexity_gpu(GpuLlamaModel& model, const std::vector<int32_t>& tokens,
                                    const PerplexityOptions& opt) {
  if (opt.kv_spec != "fp16" && opt.kv_spec != "bf16")
    throw Error("--device cuda: KV method '" + opt.kv_spec +
                "' has no GPU cache yet (use fp16 or bf16, or --device cpu)");
  auto cache = std::make_shared<GpuFp16Cache>(model.kv_geometry(), opt.ctx, opt.kv_spec == "bf16");
  PerplexityEngine e;
  e.n_vocab = model.config().n_vocab;
  e.reset = [cache] { cache->clear(); };
  e.forward = [&model, cache](const int32_t* t, const int32_t* pos, int n) {
    return model.forward(t, pos, n, *cache, LlamaModel::Logits::All);
  };
  e.cache_bytes = [cache] { return cache->bytes(); };
  PerplexityResult r = run_perplexity(e, tokens, opt);
  r.kv_spec = opt.kv_spec + " (cuda)";
  return r;
}

}  // namespace cvq::gpu
