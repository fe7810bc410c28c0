#pragma once
// `bench batch`: decode throughput of B sequences advanced together (LlamaModel::forward_batch).
// Every sequence gets the same prompt, prefilled once per group of caches that can share it
// (kv/shared_prefill_cache.h); sequence i uses KV method kv[i mod |kv|].
#include <cstdint>
#include <string>
#include <vector>

namespace cvq {

class LlamaModel;

struct BatchDecodeRun {
  int batch = 0;
  double seconds_per_step = 0.0;  // median over the rounds
  double tokens_per_s = 0.0;      // batch / seconds_per_step
  std::vector<double> round_seconds_per_step;
  std::string methods;  // the distinct specs, " | "-joined
};

// Every batch size is prefilled first; then, in each of `rounds` rounds, every size advances
// decode_tokens / rounds steps in turn. Interleaving the sizes this way makes noise that drifts over
// time (other tenants of the machine) hit every size alike; the median round is reported.
std::vector<BatchDecodeRun> measure_batch_decode(const LlamaModel& model, const std::vector<int32_t>& prompt,
                                                 const std::vector<int>& batches, const std::vector<std::string>& kv,
                                                 int decode_tokens, int rounds);

}  // namespace cvq
