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
  double seconds_per_step = 0.0;
  double tokens_per_s = 0.0;  // batch × steps / seconds
  std::string methods;        // the distinct specs, " | "-joined
};

BatchDecodeRun measure_batch_decode(const LlamaModel& model, const std::vector<int32_t>& prompt, int batch,
                                    const std::vector<std::string>& kv, int decode_tokens);

}  // namespace cvq
