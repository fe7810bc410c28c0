#include "gpu/gpu_generation.h"

#include <chrono>

#include "core/error.h"
#include "gpu/gpu_llama_model.h"
#include "model/tokenizer.h"

namespace cvq::gpu {

GenerationResult generate_greedy_gpu(GpuLlamaModel& model, GpuKvCache& cache, const Tokenizer& tok,
                                     const std::vector<int32_t>& prompt, int max_new_tokens) {
  using clock = std::chrono::steady_clock;
  if (prompt.empty()) throw Error("generate: the prompt is empty");
  const int V = model.config().n_vocab;
  GenerationResult r;
  r.prompt_tokens = static_cast<int>(prompt.size());
  std::vector<int32_t> positions(prompt.size());
  for (size_t i = 0; i < prompt.size(); ++i) positions[i] = static_cast<int32_t>(i);
  const auto t0 = clock::now();
  std::vector<float> logits =
      model.forward(prompt.data(), positions.data(), r.prompt_tokens, cache, LlamaModel::Logits::Last);
  const auto t1 = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  int32_t pos = r.prompt_tokens;
  for (int step = 0; step < max_new_tokens; ++step) {
    const int32_t next = argmax(logits.data(), V);
    if (tok.is_end_of_generation(next)) {
      r.hit_eog = true;
      break;
    }
    r.tokens.push_back(next);
    ++r.generated_tokens;
    r.text += tok.token_to_piece(next);
    if (step + 1 == max_new_tokens) break;
    logits = model.forward(&next, &pos, 1, cache, LlamaModel::Logits::Last);
    ++pos;
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  r.kv_bytes = cache.bytes();
  return r;
}

}  // namespace cvq::gpu
