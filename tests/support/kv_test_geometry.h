#pragma once
// A KV geometry without a model, for cache tests.
#include "kv/kv_cache.h"

namespace cvq::test {

inline KvGeometry make_geo(int layers, int heads, int kv_heads, int d, RopeLayout layout, double theta = 10000.0) {
  KvGeometry g;
  g.n_layers = layers;
  g.n_head = heads;
  g.n_head_kv = kv_heads;
  g.head_dim = d;
  g.rope = Rope(d, theta, layout);
  return g;
}

}  // namespace cvq::test
