#include "bench/compression_time.h"

#include <chrono>

#include "bench/bench_inputs.h"
#include "commvq/kv_methods.h"
#include "core/stopwatch.h"
#include "kv/windowed_cache.h"
#include "model/llama_model.h"

namespace cvq {
namespace {}  // namespace

RecordedPrefill record_prefill(const LlamaModel& model, const std::vector<int32_t>& tokens) {
  const int n = static_cast<int>(tokens.size());
  const KvGeometry geo = model.kv_geometry();
  RecordedPrefill rec;
  rec.k.resize(geo.n_layers);
  rec.v.resize(geo.n_layers);
  rec.positions = bench_positions(n);
  LayerObserver observe = [&](int layer, const float*, const float* k, const float* v, const int32_t*, int rows) {
    const size_t D = geo.kv_dim();
    rec.k[layer].insert(rec.k[layer].end(), k, k + rows * D);
    rec.v[layer].insert(rec.v[layer].end(), v, v + rows * D);
  };
  auto fp16 = make_kv_cache("fp16", geo);
  const auto t0 = std::chrono::steady_clock::now();
  model.forward(tokens.data(), rec.positions.data(), n, *fp16, LlamaModel::Logits::Last, &observe);
  rec.prefill_seconds = seconds_since(t0);
  return rec;
}

CompressionTime time_compression(const KvGeometry& geo, const RecordedPrefill& rec, const std::string& spec) {
  auto cache = make_kv_cache(spec, geo);
  const int n = static_cast<int>(rec.positions.size());
  const auto t0 = std::chrono::steady_clock::now();
  for (int l = 0; l < geo.n_layers; ++l) cache->append(l, rec.k[l].data(), rec.v[l].data(), rec.positions.data(), n);
  if (auto* w = dynamic_cast<WindowedCache*>(cache.get())) w->settle();
  return {seconds_since(t0), cache->bytes()};
}

}  // namespace cvq
