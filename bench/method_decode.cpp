#include "bench/method_decode.h"

#include <chrono>
#include <memory>

#include "bench/bench_inputs.h"
#include "bench/rounds.h"
#include "commvq/kv_methods.h"
#include "core/error.h"
#include "core/stopwatch.h"
#include "model/llama_model.h"
#include "tasks/generation.h"

namespace cvq {

MethodDecodeResult measure_method_decode(const LlamaModel& model, const std::vector<int32_t>& prompt,
                                         const std::vector<std::string>& specs, int decode_tokens, int rounds) {
  if (specs.empty()) throw Error("bench decode: no KV method");
  if (rounds < 1 || decode_tokens < rounds) throw Error("bench decode: need 1 <= rounds <= decode steps");
  const int n = static_cast<int>(prompt.size()), V = model.config().n_vocab;
  if (n + decode_tokens + 1 > model.config().n_ctx_train)
    throw Error("bench decode: prompt + decode exceed the context");
  std::vector<std::unique_ptr<KvCache>> owned;
  std::vector<KvCache*> caches;
  for (const std::string& s : specs) {
    owned.push_back(make_kv_cache(s, model.kv_geometry()));
    caches.push_back(owned.back().get());
  }
  MethodDecodeResult result;
  std::vector<int32_t> at(specs.size(), n);
  const auto t_prefill = std::chrono::steady_clock::now();
  std::vector<int32_t> next = prefill_shared(model, prompt, caches);
  result.prefill_seconds = seconds_since(t_prefill);
  result.runs.resize(specs.size());
  auto step = [&](size_t i) {
    const std::vector<float> lg = model.forward(&next[i], &at[i], 1, *caches[i], LlamaModel::Logits::Last);
    next[i] = argmax(lg.data(), V);
    ++at[i];
  };
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step(i);
    result.runs[i].first_step_seconds = seconds_since(t0);
  }
  for (int r = 0; r < rounds; ++r) {
    const int steps = steps_in_round(decode_tokens, rounds, r);
    for (size_t i = 0; i < specs.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int s = 0; s < steps; ++s) step(i);
      result.runs[i].round_seconds_per_token.push_back(seconds_since(t0) / steps);
    }
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    MethodDecodeRun& run = result.runs[i];
    run.spec = specs[i];
    run.seconds_per_token = median(run.round_seconds_per_token);
    run.tokens_per_s = 1.0 / run.seconds_per_token;
    run.kv_bytes = caches[i]->bytes();
  }
  return result;
}

}  // namespace cvq
