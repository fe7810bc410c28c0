#include "bench/batch_decode.h"

#include <chrono>
#include <memory>

#include "bench/bench_inputs.h"
#include "commvq/kv_methods.h"
#include "kv/shared_prefill_cache.h"
#include "model/llama_model.h"
#include "tasks/generation.h"

namespace cvq {

BatchDecodeRun measure_batch_decode(const LlamaModel& model, const std::vector<int32_t>& prompt, int batch,
                                    const std::vector<std::string>& kv, int decode_tokens) {
  const int n = static_cast<int>(prompt.size()), V = model.config().n_vocab;
  const std::vector<int32_t> pos = bench_positions(n);
  BatchDecodeRun run;
  run.batch = batch;
  std::vector<std::unique_ptr<KvCache>> owned;
  std::vector<KvCache*> caches;
  for (int i = 0; i < batch; ++i) {
    const std::string& spec = kv[static_cast<size_t>(i) % kv.size()];
    owned.push_back(make_kv_cache(spec, model.kv_geometry()));
    caches.push_back(owned.back().get());
    if (i < static_cast<int>(kv.size())) run.methods += (i ? " | " : "") + spec;
  }
  // One prefill per signature group, then greedy steps for every sequence together.
  std::vector<int32_t> next(batch), at(batch, n);
  for (const auto& group : prefill_groups(caches)) {
    std::vector<KvCache*> members;
    for (size_t i : group) members.push_back(caches[i]);
    SharedPrefillCache shared(members);
    const std::vector<float> lg = model.forward(prompt.data(), pos.data(), n, shared, LlamaModel::Logits::Last);
    for (size_t i : group) next[i] = argmax(lg.data(), V);
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < decode_tokens; ++s) {
    const std::vector<float> lg = model.forward_batch(next.data(), at.data(), caches);
    for (int i = 0; i < batch; ++i) {
      next[i] = argmax(lg.data() + static_cast<size_t>(i) * V, V);
      ++at[i];
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run.seconds_per_step = secs / decode_tokens;
  run.tokens_per_s = static_cast<double>(batch) * decode_tokens / secs;
  return run;
}

}  // namespace cvq
