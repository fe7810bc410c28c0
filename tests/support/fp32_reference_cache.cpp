#include "support/fp32_reference_cache.h"

#include <algorithm>
#include <cmath>

namespace cvq::test {

Fp32ReferenceCache::Fp32ReferenceCache(KvGeometry g) : KvCache(std::move(g)), layers_(geo_.n_layers) {}

void Fp32ReferenceCache::append(int layer, const float* k_pre_rope, const float* v, const int32_t* positions, int n) {
  Layer& L = layers_[layer];
  const int kv = geo_.kv_dim();
  for (int t = 0; t < n; ++t) {
    std::vector<float> k(k_pre_rope + static_cast<size_t>(t) * kv, k_pre_rope + static_cast<size_t>(t + 1) * kv);
    geo_.rope.apply(k.data(), geo_.n_head_kv, positions[t]);
    L.k.insert(L.k.end(), k.begin(), k.end());
    L.v.insert(L.v.end(), v + static_cast<size_t>(t) * kv, v + static_cast<size_t>(t + 1) * kv);
    L.pos.push_back(positions[t]);
  }
}

void Fp32ReferenceCache::attend(int layer, const float* q, const int32_t* positions, int n, float* out) {
  const Layer& L = layers_[layer];
  const int d = geo_.head_dim, kv = geo_.kv_dim(), group = geo_.n_head / geo_.n_head_kv;
  const size_t T = L.pos.size();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> w(T);
  for (int i = 0; i < n; ++i) {
    for (int h = 0; h < geo_.n_head; ++h) {
      const float* qh = q + static_cast<size_t>(i) * geo_.q_dim() + static_cast<size_t>(h) * d;
      const int hk = h / group;
      double mx = -INFINITY;
      for (size_t t = 0; t < T; ++t) {
        if (L.pos[t] > positions[i]) {
          w[t] = -INFINITY;
          continue;
        }
        double s = 0;
        for (int e = 0; e < d; ++e) s += double(qh[e]) * double(L.k[t * kv + static_cast<size_t>(hk) * d + e]);
        w[t] = s * scale;
        mx = std::max(mx, w[t]);
      }
      double sum = 0;
      for (size_t t = 0; t < T; ++t) sum += (w[t] = std::isinf(w[t]) ? 0.0 : std::exp(w[t] - mx));
      float* o = out + static_cast<size_t>(i) * geo_.q_dim() + static_cast<size_t>(h) * d;
      for (int e = 0; e < d; ++e) {
        double acc = 0;
        for (size_t t = 0; t < T; ++t) acc += w[t] * double(L.v[t * kv + static_cast<size_t>(hk) * d + e]);
        o[e] = static_cast<float>(acc / sum);
      }
    }
  }
}

size_t Fp32ReferenceCache::bytes() const {
  size_t b = 0;
  for (const Layer& L : layers_) b += (L.k.size() + L.v.size()) * sizeof(float);
  return b;
}

int64_t Fp32ReferenceCache::n_tokens(int layer) const { return static_cast<int64_t>(layers_[layer].pos.size()); }

void Fp32ReferenceCache::clear() {
  for (Layer& L : layers_) L = Layer{};
}

}  // namespace cvq::test
