#include "bench/batch_decode.h"

#include <algorithm>
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
namespace {

// B sequences on one prompt, prefilled; steps() advances them together.
class BatchDecoder {
 public:
  BatchDecoder(const LlamaModel& model, const std::vector<int32_t>& prompt, int batch,
               const std::vector<std::string>& kv)
      : model_(model), at_(static_cast<size_t>(batch), static_cast<int>(prompt.size())) {
    for (int i = 0; i < batch; ++i) {
      const std::string& spec = kv[static_cast<size_t>(i) % kv.size()];
      owned_.push_back(make_kv_cache(spec, model.kv_geometry()));
      caches_.push_back(owned_.back().get());
      if (i < static_cast<int>(kv.size())) methods_ += (i ? " | " : "") + spec;
    }
    next_ = prefill_shared(model, prompt, caches_);
  }

  // Seconds for `steps` greedy steps of every sequence together.
  double steps(int steps) {
    const int V = model_.config().n_vocab;
    const auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) {
      const std::vector<float> lg = model_.forward_batch(next_.data(), at_.data(), caches_);
      for (size_t i = 0; i < caches_.size(); ++i) {
        next_[i] = argmax(lg.data() + i * static_cast<size_t>(V), V);
        ++at_[i];
      }
    }
    return seconds_since(t0);
  }

  const std::string& methods() const { return methods_; }

 private:
  const LlamaModel& model_;
  std::vector<std::unique_ptr<KvCache>> owned_;
  std::vector<KvCache*> caches_;
  std::vector<int32_t> next_, at_;
  std::string methods_;
};

}  // namespace

std::vector<BatchDecodeRun> measure_batch_decode(const LlamaModel& model, const std::vector<int32_t>& prompt,
                                                 const std::vector<int>& batches, const std::vector<std::string>& kv,
                                                 int decode_tokens, int rounds) {
  if (rounds < 1 || decode_tokens < rounds) throw Error("bench batch: need 1 <= rounds <= decode steps");
  std::vector<std::unique_ptr<BatchDecoder>> decoders;
  for (int B : batches) decoders.push_back(std::make_unique<BatchDecoder>(model, prompt, B, kv));
  std::vector<BatchDecodeRun> runs(batches.size());
  for (int r = 0; r < rounds; ++r) {
    const int steps = steps_in_round(decode_tokens, rounds, r);
    for (size_t i = 0; i < decoders.size(); ++i)
      runs[i].round_seconds_per_step.push_back(decoders[i]->steps(steps) / steps);
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    runs[i].batch = batches[i];
    runs[i].methods = decoders[i]->methods();
    runs[i].seconds_per_step = median(runs[i].round_seconds_per_step);
    runs[i].tokens_per_s = batches[i] / runs[i].seconds_per_step;
  }
  return runs;
}

}  // namespace cvq
