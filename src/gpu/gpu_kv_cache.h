#pragma once
// KV caches that live on the device, behind the same seam as src/kv/kv_cache.h (keys arrive before
// RoPE; the cache rotates what it stores post-RoPE). All pointers are device pointers.
//  * GpuFp16Cache — fp16 (or bf16) keys and values, attention by flash-decoding.
//  * GpuCommvqCache (gpu_commvq_cache.h) — CommVQ codes + fp16 window, attention on the codes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/device_memory.h"
#include "kv/kv_cache.h"

namespace cvq::gpu {

class GpuKvCache {
 public:
  explicit GpuKvCache(KvGeometry g) : geo_(std::move(g)) {}
  virtual ~GpuKvCache() = default;
  // k_pre_rope, v: n × kv_dim; cos_sin: n × head_dim rows for the tokens' positions (device).
  // Positions must continue the cache (positions[i] = n_tokens() + i). k is rotated in place.
  virtual void append(int layer, float* k_pre_rope, const float* v, const int32_t* positions, int n,
                      const float* cos_sin) = 0;
  // q_post_rope, out: n × q_dim; query i sees every cached token at a position <= positions[i].
  virtual void attend(int layer, const float* q_post_rope, const int32_t* positions, int n, float* out) = 0;
  virtual size_t bytes() const = 0;            // bytes the stored tokens take (all layers), as KvCache::bytes()
  virtual size_t allocated_bytes() const = 0;  // device bytes reserved for the capacity
  virtual int64_t n_tokens(int layer) const = 0;
  virtual void clear() = 0;
  virtual std::string spec() const = 0;
  const KvGeometry& geometry() const { return geo_; }

 protected:
  KvGeometry geo_;
};

class GpuFp16Cache : public GpuKvCache {
 public:
  GpuFp16Cache(const KvGeometry& g, int64_t capacity, bool bf16 = false);
  void append(int layer, float* k_pre_rope, const float* v, const int32_t* positions, int n,
              const float* cos_sin) override;
  void attend(int layer, const float* q_post_rope, const int32_t* positions, int n, float* out) override;
  size_t bytes() const override;
  size_t allocated_bytes() const override;
  int64_t n_tokens(int layer) const override { return len_[static_cast<size_t>(layer)]; }
  void clear() override;
  std::string spec() const override { return bf16_ ? "bf16" : "fp16"; }
  // Fills every layer with n_tokens pseudo-random keys/values (memory and speed studies).
  void fill_random(int64_t n_tokens, uint64_t seed);

 private:
  int64_t capacity_;
  bool bf16_;
  std::vector<cuda::DeviceBuffer<uint16_t>> k_, v_;
  std::vector<int64_t> len_;
  cuda::DeviceBuffer<int32_t> visible_;
};

}  // namespace cvq::gpu
