#include "gpu/gpu_kv_cache.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/cuda/attention_gpu.h"
#include "kernels/cuda/norm_act_gpu.h"
#include "kernels/cuda/rope_gpu.h"

namespace cvq::gpu {

GpuFp16Cache::GpuFp16Cache(const KvGeometry& g, int64_t capacity, bool bf16)
    : GpuKvCache(g), capacity_(capacity), bf16_(bf16), len_(static_cast<size_t>(g.n_layers), 0) {
  if (capacity <= 0) throw Error("GPU KV cache: capacity must be positive");
  const size_t per_layer = static_cast<size_t>(capacity) * g.kv_dim();
  for (int l = 0; l < g.n_layers; ++l) {
    k_.emplace_back(per_layer);
    v_.emplace_back(per_layer);
  }
}

void GpuFp16Cache::append(int layer, float* k_pre_rope, const float* v, const int32_t* positions, int n,
                          const float* cos_sin) {
  int64_t& len = len_.at(static_cast<size_t>(layer));
  if (n <= 0) return;
  if (positions[0] != len)
    throw Error("GPU KV cache: positions must continue the cache (got " + std::to_string(positions[0]) + ", have " +
                std::to_string(len) + " tokens)");
  if (len + n > capacity_)
    throw Error("GPU KV cache: " + std::to_string(len + n) + " tokens exceed the capacity " +
                std::to_string(capacity_));
  const int kv = geo_.kv_dim();
  cuda::rope_apply(k_pre_rope, n, geo_.n_head_kv, geo_.head_dim, cos_sin, geo_.rope.layout() == RopeLayout::HalfSplit);
  cuda::float_to_half(k_pre_rope, k_[static_cast<size_t>(layer)].get() + len * kv, static_cast<int64_t>(n) * kv, bf16_);
  cuda::float_to_half(v, v_[static_cast<size_t>(layer)].get() + len * kv, static_cast<int64_t>(n) * kv, bf16_);
  len += n;
}

void GpuFp16Cache::attend(int layer, const float* q, const int32_t* positions, int n, float* out) {
  const int64_t len = len_.at(static_cast<size_t>(layer));
  std::vector<int32_t> visible(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    if (positions[i] < 0 || positions[i] >= len) throw Error("GPU KV cache: query position outside the cache");
    visible[static_cast<size_t>(i)] = positions[i] + 1;  // positions are 0..len-1 in order
  }
  visible_.ensure(static_cast<size_t>(n));
  cuda::copy_to_device(visible_.get(), visible.data(), visible.size() * sizeof(int32_t));
  cuda::AttentionHalfArgs a;
  a.q = q;
  a.n_q = n;
  a.q_stride = geo_.q_dim();
  a.n_head = geo_.n_head;
  a.n_head_kv = geo_.n_head_kv;
  a.head_dim = geo_.head_dim;
  a.k = k_[static_cast<size_t>(layer)].get();
  a.v = v_[static_cast<size_t>(layer)].get();
  a.kv_stride = geo_.kv_dim();
  a.n_ctx = len;
  a.n_visible = visible_.get();
  a.out = out;
  a.out_stride = geo_.q_dim();
  a.bf16 = bf16_;
  cuda::attention_half(a);
}

size_t GpuFp16Cache::bytes() const {
  size_t b = 0;
  for (int64_t l : len_) b += static_cast<size_t>(l) * geo_.kv_dim() * 2 * sizeof(uint16_t);
  return b;
}

size_t GpuFp16Cache::allocated_bytes() const {
  return static_cast<size_t>(capacity_) * geo_.kv_dim() * 2 * sizeof(uint16_t) * static_cast<size_t>(geo_.n_layers);
}

void GpuFp16Cache::clear() { std::fill(len_.begin(), len_.end(), 0); }

void GpuFp16Cache::fill_random(int64_t n_tokens, uint64_t seed) {
  if (n_tokens > capacity_) throw Error("GPU KV cache: fill beyond the capacity");
  const int64_t count = n_tokens * geo_.kv_dim();
  for (int l = 0; l < geo_.n_layers; ++l) {
    cuda::fill_uniform_half(k_[static_cast<size_t>(l)].get(), count, seed + 2 * static_cast<uint64_t>(l), 1.0f, bf16_);
    cuda::fill_uniform_half(v_[static_cast<size_t>(l)].get(), count, seed + 2 * static_cast<uint64_t>(l) + 1, 1.0f,
                            bf16_);
    len_[static_cast<size_t>(l)] = n_tokens;
  }
}

}  // namespace cvq::gpu
