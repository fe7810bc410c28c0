#include "gpu/gpu_generation.h"

#include "gpu/gpu_kv_cache.h"
#include "gpu/gpu_llama_model.h"

namespace cvq::gpu {

GenerationResult generate_greedy_gpu(GpuLlamaModel& model, GpuKvCache& cache, const Tokenizer& tok,
                                     const std::vector<int32_t>& prompt, int max_new_tokens) {
  GenerationResult r =
      greedy_decode([&](const int32_t* tokens, const int32_t* positions,
                        int n) { return model.forward(tokens, positions, n, cache, LlamaModel::Logits::Last); },
                    tok, model.config().n_vocab, model.config().n_ctx_train, prompt, max_new_tokens, {}, {});
  r.kv_bytes = cache.bytes();
  return r;
}

}  // namespace cvq::gpu
