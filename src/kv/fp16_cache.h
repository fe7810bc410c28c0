#pragma once
// Reference method: post-RoPE keys and values stored as fp16 (or bf16), 16 bits per element.
#include <vector>

#include "kv/kv_cache.h"

namespace cvq {

class Fp16Cache : public KvCache {
 public:
  Fp16Cache(KvGeometry g, bool bf16);
  void append(int layer, const float* k_pre_rope, const float* v, const int32_t* positions, int n) override;
  void attend(int layer, const float* q_post_rope, const int32_t* positions, int n, float* out) override;
  size_t bytes() const override;
  int64_t n_tokens(int layer) const override { return static_cast<int64_t>(layers_[layer].positions.size()); }
  void clear() override;
  std::string spec() const override { return bf16_ ? "bf16" : "fp16"; }

 private:
  struct Layer {
    std::vector<uint16_t> k, v;  // [n_tokens x kv_dim]
    std::vector<int32_t> positions;
  };
  bool bf16_;
  std::vector<Layer> layers_;
  std::vector<float> k_scratch_, v_scratch_;
};

}  // namespace cvq
