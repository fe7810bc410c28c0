#include "kv/fp16_cache.h"

#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"

namespace cvq {

Fp16Cache::Fp16Cache(KvGeometry g, bool bf16) : KvCache(std::move(g)), bf16_(bf16), layers_(geo_.n_layers) {}

void Fp16Cache::append(int layer, const float* k_pre_rope, const float* v, const int32_t* positions, int n) {
  Layer& L = layers_[layer];
  const int D = geo_.kv_dim();
  std::vector<float> k(k_pre_rope, k_pre_rope + static_cast<int64_t>(n) * D);
  for (int t = 0; t < n; ++t) geo_.rope.apply(k.data() + static_cast<int64_t>(t) * D, geo_.n_head_kv, positions[t]);
  const size_t old = L.k.size();
  L.k.resize(old + static_cast<size_t>(n) * D);
  L.v.resize(old + static_cast<size_t>(n) * D);
  for (int64_t i = 0; i < static_cast<int64_t>(n) * D; ++i) {
    L.k[old + i] = bf16_ ? float_to_bf16(k[i]) : float_to_fp16(k[i]);
    L.v[old + i] = bf16_ ? float_to_bf16(v[i]) : float_to_fp16(v[i]);
  }
  L.positions.insert(L.positions.end(), positions, positions + n);
}

void Fp16Cache::attend(int layer, const float* q, const int32_t* positions, int n, float* out) {
  Layer& L = layers_[layer];
  const int D = geo_.kv_dim();
  std::vector<int32_t> visible(n);
  visible_counts(L.positions, positions, n, visible.data());
  int ctx = 0;
  for (int32_t c : visible) ctx = std::max(ctx, c);
  k_scratch_.resize(static_cast<size_t>(ctx) * D);
  v_scratch_.resize(static_cast<size_t>(ctx) * D);
  ThreadPool::global().parallel_for(
      static_cast<int64_t>(ctx) * D,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
          k_scratch_[i] = bf16_ ? bf16_to_float(L.k[i]) : fp16_to_float(L.k[i]);
          v_scratch_[i] = bf16_ ? bf16_to_float(L.v[i]) : fp16_to_float(L.v[i]);
        }
      },
      4096);
  AttentionArgs a;
  a.q = q;
  a.n_q = n;
  a.q_stride = geo_.q_dim();
  a.n_head = geo_.n_head;
  a.n_head_kv = geo_.n_head_kv;
  a.head_dim = geo_.head_dim;
  a.k = k_scratch_.data();
  a.v = v_scratch_.data();
  a.n_ctx = ctx;
  a.kv_stride = D;
  a.n_visible = visible.data();
  a.out = out;
  attention_f32(a);
}

size_t Fp16Cache::bytes() const {
  // Positions are bookkeeping every method shares (a contiguous range in practice), not KV storage.
  size_t b = 0;
  for (const auto& L : layers_) b += (L.k.size() + L.v.size()) * sizeof(uint16_t);
  return b;
}

void Fp16Cache::clear() {
  for (auto& L : layers_) {
    L.k.clear();
    L.v.clear();
    L.positions.clear();
  }
}

}  // namespace cvq
