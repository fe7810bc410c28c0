#pragma once
// `bench decode`: single-sequence decode tokens/s of each KV method at one context length, every
// method's cache built from one shared prefill of the prompt (kv/shared_prefill_cache.h), so a long
// context costs one prefill, not one per method. Each method first takes one untimed step (where
// windowed methods compress the prompt), then the timed steps run in interleaved rounds: every method
// takes its turn in each round, and the median round is reported (noise that drifts over time hits
// every method alike).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cvq {

class LlamaModel;

struct MethodDecodeRun {
  std::string spec;
  double seconds_per_token = 0.0;  // median over the rounds
  double tokens_per_s = 0.0;
  double first_step_seconds = 0.0;  // the untimed first step (compression of the prompt)
  std::vector<double> round_seconds_per_token;
  size_t kv_bytes = 0;  // after the timed steps
};

struct MethodDecodeResult {
  double prefill_seconds = 0.0;
  std::vector<MethodDecodeRun> runs;
};

MethodDecodeResult measure_method_decode(const LlamaModel& model, const std::vector<int32_t>& prompt,
                                         const std::vector<std::string>& specs, int decode_tokens, int rounds);

}  // namespace cvq
