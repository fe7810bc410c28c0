#pragma once
// `bench context`: the engine at long context for one KV method — prefill tokens/s of an N-token
// prompt with attention's share of it, the first decode step (where windowed methods compress the
// prompt), steady decode tokens/s against the memory-bandwidth bound (weight bytes + the cache's bytes
// read per token, at a read bandwidth measured in the same run), and the process's peak RSS.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cvq {

class LlamaModel;

// Read bandwidth of this machine with the engine's threads: the best of 5 passes summing 1 GiB.
double read_bandwidth_bytes_per_s();

struct LongContextRun {
  int prompt_tokens = 0;
  double prefill_tokens_per_s = 0.0;
  double prefill_attention_share = 0.0;  // attention's seconds / prefill seconds
  double first_decode_step_seconds = 0.0;
  double decode_tokens_per_s = 0.0;
  double bound_tokens_per_s = 0.0;  // bandwidth / (weight bytes + cache bytes)
  size_t kv_bytes = 0;
  int64_t peak_rss_bytes = -1;  // VmHWM since the run started (-1: unknown)
};
LongContextRun measure_long_context(const LlamaModel& model, const std::vector<int32_t>& prompt,
                                    const std::string& kv_spec, int decode_tokens, double read_bandwidth);

}  // namespace cvq
