#include "bench/long_context.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>

#include "bench/bench_inputs.h"
#include "commvq/kv_methods.h"
#include "core/stopwatch.h"
#include "core/thread_pool.h"
#include "kv/timed_cache.h"
#include "model/llama_model.h"
#include "tasks/generation.h"

namespace cvq {
namespace {

using Clock = SteadyClock;

int64_t vm_hwm_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}
void reset_vm_hwm() {
  std::ofstream out("/proc/self/clear_refs");
  if (out) out << "5";
}

__attribute__((target_clones("avx512f", "avx2", "default"))) float sum_floats(const float* p, int64_t n) {
  float acc[32] = {};
  for (int64_t i = 0; i + 32 <= n; i += 32)
    for (int k = 0; k < 32; ++k) acc[k] += p[i + k];
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

}  // namespace

double read_bandwidth_bytes_per_s() {
  const size_t n = size_t{256} << 20;  // 1 GiB of floats
  std::vector<float> buf(n, 1.0f);
  ThreadPool& pool = ThreadPool::global();
  std::vector<double> part_sums(static_cast<size_t>(pool.size()), 0.0);
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    pool.parallel_for(static_cast<int64_t>(n / 1024), [&](int64_t b, int64_t e, int part) {
      part_sums[static_cast<size_t>(part)] += sum_floats(buf.data() + b * 1024, (e - b) * 1024);
    });
    best = std::max(best, static_cast<double>(n * sizeof(float)) / seconds_since(t0));
  }
  if (part_sums[0] < 0) std::printf(" ");  // keeps the sums observable
  return best;
}

LongContextRun measure_long_context(const LlamaModel& model, const std::vector<int32_t>& prompt,
                                    const std::string& kv_spec, int decode_tokens, double read_bandwidth) {
  const int P = static_cast<int>(prompt.size()), V = model.config().n_vocab;
  const std::vector<int32_t> positions = bench_positions(P);
  LongContextRun r;
  r.prompt_tokens = P;
  TimedKvCache cache(make_kv_cache(kv_spec, model.kv_geometry()));
  reset_vm_hwm();
  auto t0 = Clock::now();
  std::vector<float> logits = model.forward(prompt.data(), positions.data(), P, cache, LlamaModel::Logits::Last);
  const double prefill_s = seconds_since(t0);
  r.prefill_tokens_per_s = P / prefill_s;
  r.prefill_attention_share = cache.attend_seconds() / prefill_s;
  int32_t pos = P;
  int32_t next = argmax(logits.data(), V);
  t0 = Clock::now();
  logits = model.forward(&next, &pos, 1, cache, LlamaModel::Logits::Last);  // compresses the prompt
  r.first_decode_step_seconds = seconds_since(t0);
  ++pos;
  t0 = Clock::now();
  for (int s = 0; s < decode_tokens; ++s, ++pos) {
    next = argmax(logits.data(), V);
    logits = model.forward(&next, &pos, 1, cache, LlamaModel::Logits::Last);
  }
  r.decode_tokens_per_s = decode_tokens / seconds_since(t0);
  // Bytes a decode step must read: the weights and the whole cache.
  r.kv_bytes = cache.bytes();
  r.bound_tokens_per_s = read_bandwidth / (static_cast<double>(model.weight_bytes()) + static_cast<double>(r.kv_bytes));
  r.peak_rss_bytes = vm_hwm_bytes();
  return r;
}

}  // namespace cvq
