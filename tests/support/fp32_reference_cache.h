#pragma once
// A KV cache for oracle comparisons: keys (after RoPE) and values kept in fp32, attention computed
// naively with double sums. Not a method of the project (it stores 32 bits per element); it lets the
// engine's forward be compared with an fp32 reference implementation (transformers) without the
// fp16 rounding of the reference cache.
#include <vector>

#include "kv/kv_cache.h"

namespace cvq::test {

class Fp32ReferenceCache final : public KvCache {
 public:
  explicit Fp32ReferenceCache(KvGeometry g);
  void append(int layer, const float* k_pre_rope, const float* v, const int32_t* positions, int n) override;
  void attend(int layer, const float* q_post_rope, const int32_t* positions, int n, float* out) override;
  size_t bytes() const override;
  int64_t n_tokens(int layer) const override;
  void clear() override;
  std::string spec() const override { return "fp32-reference"; }

 private:
  struct Layer {
    std::vector<float> k, v;  // [tokens x kv_dim]
    std::vector<int32_t> pos;
  };
  std::vector<Layer> layers_;
};

}  // namespace cvq::test
