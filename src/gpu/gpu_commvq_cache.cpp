#include "gpu/gpu_commvq_cache.h"

#include <cmath>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cuda/commvq_attention_gpu.h"
#include "kernels/cuda/norm_act_gpu.h"
#include "kernels/cuda/rope_gpu.h"

namespace cvq::gpu {
namespace {
constexpr int kSub = 64;
}

int GpuCommvqShape::key_stages(int head_dim) const {
  return static_cast<int>(std::lround(bits * head_dim / 12.0));  // docs/METHOD.md §2
}

size_t GpuCommvqShape::coded_bytes_per_token(int n_head_kv, int head_dim) const {
  return static_cast<size_t>(n_head_kv) * key_stages(head_dim) * sizeof(uint16_t) + sizeof(uint16_t) +
         static_cast<size_t>(value_code_bits(n_head_kv * head_dim)) / 8 + sizeof(uint16_t);
}

size_t GpuCommvqShape::codebook_bytes_per_layer(int n_head_kv, int head_dim) const {
  const size_t D = static_cast<size_t>(n_head_kv) * head_dim;
  return (static_cast<size_t>(n_head_kv) * key_stages(head_dim) * 2 * kSub * (head_dim / 2) +
          static_cast<size_t>(value_code_bits(static_cast<int>(D))) * D + D) *
         sizeof(float);
}

GpuCommvqCache::GpuCommvqCache(const KvGeometry& g, GpuCommvqShape shape, int64_t coded_capacity)
    : GpuKvCache(g), shape_(shape), capacity_(coded_capacity) {
  if (shape.bits != 1 && shape.bits != 2) throw Error("GPU CommVQ cache: bits must be 1 or 2");
  if (coded_capacity < 0 || shape.window <= 0) throw Error("GPU CommVQ cache: bad capacity");
  stages_ = shape.key_stages(g.head_dim);
  code_bits_ = shape.value_code_bits(g.kv_dim());
  const size_t D = static_cast<size_t>(g.kv_dim()), cap = static_cast<size_t>(coded_capacity);
  layers_.resize(static_cast<size_t>(g.n_layers));
  for (Layer& L : layers_) {
    L.key_xy = cuda::DeviceBuffer<float>(static_cast<size_t>(g.n_head_kv) * stages_ * 2 * kSub * (g.head_dim / 2));
    L.value_codebook = cuda::DeviceBuffer<float>(static_cast<size_t>(code_bits_) * D);
    L.value_scale = cuda::DeviceBuffer<float>(D);
    L.key_codes = cuda::DeviceBuffer<uint16_t>(cap * g.n_head_kv * stages_);
    L.key_norms = cuda::DeviceBuffer<uint16_t>(cap);
    L.value_p = cuda::DeviceBuffer<uint16_t>(cap);
    L.value_codes = cuda::DeviceBuffer<uint8_t>(cap * static_cast<size_t>(code_bits_ / 8));
    L.win_k = cuda::DeviceBuffer<uint16_t>(static_cast<size_t>(shape.window) * D);
    L.win_v = cuda::DeviceBuffer<uint16_t>(static_cast<size_t>(shape.window) * D);
  }
  tables_ = make_rope_tables(g.rope, coded_capacity + shape.window + 1);
}

void GpuCommvqCache::fill_random(int64_t n, uint64_t seed) {
  if (n > capacity_) throw Error("GPU CommVQ cache: fill beyond the capacity");
  const int d = geo_.head_dim, D = geo_.kv_dim();
  const std::vector<uint16_t> ones(static_cast<size_t>(n), float_to_fp16(1.0f));
  uint64_t s = seed;
  for (Layer& L : layers_) {
    // Codebooks scaled so a decoded key/value has about unit norm per element.
    cuda::fill_uniform_float(L.key_xy.get(), static_cast<int64_t>(L.key_xy.size()), ++s,
                             1.0f / std::sqrt(static_cast<float>(stages_ * d)));
    cuda::fill_uniform_float(L.value_codebook.get(), static_cast<int64_t>(L.value_codebook.size()), ++s,
                             1.0f / std::sqrt(static_cast<float>(code_bits_)));
    cuda::fill_uniform_float(L.value_scale.get(), D, ++s, 1.0f);
    cuda::fill_random_codes12(L.key_codes.get(), n * geo_.n_head_kv * stages_, ++s);
    cuda::fill_random_bytes(L.value_codes.get(), n * (code_bits_ / 8), ++s);
    if (n > 0) {
      cuda::copy_to_device(L.key_norms.get(), ones.data(), ones.size() * sizeof(uint16_t));
      cuda::copy_to_device(L.value_p.get(), ones.data(), ones.size() * sizeof(uint16_t));
    }
    L.n_coded = n;
    L.n_window = 0;
  }
}

void GpuCommvqCache::append(int layer, float* k_pre_rope, const float* v, const int32_t* positions, int n,
                            const float* cos_sin) {
  Layer& L = layers_.at(static_cast<size_t>(layer));
  if (n <= 0) return;
  if (positions[0] != L.n_coded + L.n_window) throw Error("GPU CommVQ cache: positions must continue the cache");
  if (L.n_window + n > shape_.window)
    throw Error("GPU CommVQ cache: the full-precision window would pass " + std::to_string(shape_.window) +
                " tokens; compressing it needs the CommVQ encoders on the device, which this backend does not have");
  const int D = geo_.kv_dim();
  cuda::rope_apply(k_pre_rope, n, geo_.n_head_kv, geo_.head_dim, cos_sin, geo_.rope.layout() == RopeLayout::HalfSplit);
  cuda::float_to_half(k_pre_rope, L.win_k.get() + L.n_window * D, static_cast<int64_t>(n) * D);
  cuda::float_to_half(v, L.win_v.get() + L.n_window * D, static_cast<int64_t>(n) * D);
  L.n_window += n;
}

void GpuCommvqCache::attend(int layer, const float* q, const int32_t* positions, int n, float* out) {
  const Layer& L = layers_.at(static_cast<size_t>(layer));
  cuda::CommvqLayerView v;
  v.n_head = geo_.n_head;
  v.n_head_kv = geo_.n_head_kv;
  v.head_dim = geo_.head_dim;
  v.half_split = geo_.rope.layout() == RopeLayout::HalfSplit;
  v.key_stages = stages_;
  v.key_xy = L.key_xy.get();
  v.key_codes = L.key_codes.get();
  v.key_norms = L.key_norms.get();
  v.value_code_bits = code_bits_;
  v.value_codes = L.value_codes.get();
  v.value_p = L.value_p.get();
  v.value_codebook = L.value_codebook.get();
  v.value_scale = L.value_scale.get();
  v.angles.coarse = tables_.coarse.get();
  v.angles.fine = tables_.fine.get();
  v.n_tokens = L.n_coded;
  v.win_k = L.win_k.get();
  v.win_v = L.win_v.get();
  v.win_stride = geo_.kv_dim();
  for (int i = 0; i < n; ++i) {  // query i sees the coded tokens and the window up to its position
    const int64_t visible_window = positions[i] + 1 - L.n_coded;
    if (visible_window < 0 || visible_window > L.n_window)
      throw Error("GPU CommVQ cache: query position outside the cache");
    v.n_window = visible_window;
    cuda::commvq_attend_codes(v, q + static_cast<int64_t>(i) * geo_.q_dim(),
                              out + static_cast<int64_t>(i) * geo_.q_dim());
  }
}

size_t GpuCommvqCache::bytes() const {
  size_t b = 0;
  const size_t coded = shape_.coded_bytes_per_token(geo_.n_head_kv, geo_.head_dim);
  for (const Layer& L : layers_)
    b +=
        static_cast<size_t>(L.n_coded) * coded + static_cast<size_t>(L.n_window) * geo_.kv_dim() * 2 * sizeof(uint16_t);
  return b;
}

size_t GpuCommvqCache::allocated_bytes() const {
  const size_t coded = shape_.coded_bytes_per_token(geo_.n_head_kv, geo_.head_dim);
  const size_t window = static_cast<size_t>(shape_.window) * geo_.kv_dim() * 2 * sizeof(uint16_t);
  return (static_cast<size_t>(capacity_) * coded + window) * layers_.size();
}

size_t GpuCommvqCache::codebook_bytes() const {
  return shape_.codebook_bytes_per_layer(geo_.n_head_kv, geo_.head_dim) * layers_.size();
}

int64_t GpuCommvqCache::n_tokens(int layer) const {
  const Layer& L = layers_.at(static_cast<size_t>(layer));
  return L.n_coded + L.n_window;
}

void GpuCommvqCache::clear() {
  for (Layer& L : layers_) L.n_coded = L.n_window = 0;
}

}  // namespace cvq::gpu
