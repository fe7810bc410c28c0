#pragma once
// KV-cache footprint of a method as a grid task ("memory"): one sample per context length. Bytes
// come from two sources, both recorded when available:
//   measured  — append L tokens of synthetic activations (N(0,1) keys and values, every layer) to a
//               fresh cache, then one more token so that lazily compressing methods settle, and
//               read cache.bytes(); done for L <= measure_up_to;
//   projected — KvCache::projected_bytes(L), the method's analytic accounting, where it has one.
// bits/element = bytes · 8 / (tokens · n_layers · 2 · kv_dim); the codebooks and value encoders of a
// method are a fixed per-model cost, not in bytes(): recorded beside them as fixed_bytes
// (KvCache::fixed_bytes) with fixed_share = fixed / (fixed + KV bytes at L tokens).
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "tasks/task.h"
#include "tasks/task_options.h"

namespace cvq {

struct FootprintOptions {
  std::vector<int64_t> lengths{2048, 8192, 32768, 131072};
  int64_t measure_up_to = 8192;
  int chunk = 512;
  uint64_t seed = 1234;
  static FootprintOptions parse(const TaskOptions& o);
};

class KvFootprintTask : public EvalTask {
 public:
  explicit KvFootprintTask(FootprintOptions o) : o_(std::move(o)) {}
  std::string family() const override { return "memory"; }
  int64_t size() const override { return static_cast<int64_t>(o_.lengths.size()); }
  std::string sample_id(int64_t i) const override {
    return "len" + std::to_string(o_.lengths.at(static_cast<size_t>(i)));
  }
  nlohmann::json identity() const override;
  nlohmann::json run_sample(int64_t i, const LlamaModel& model, KvCache& cache) override;

 private:
  FootprintOptions o_;
};

// projected_bytes(n) when the method has it, else -1.
int64_t try_projected_bytes(const KvCache& cache, int64_t n_tokens);
double bits_per_element(double bytes, int64_t tokens, const KvGeometry& g);

}  // namespace cvq
