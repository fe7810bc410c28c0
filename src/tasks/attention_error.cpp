#include "tasks/attention_error.h"

#include <cmath>
#include <memory>

#include "commvq/kv_methods.h"
#include "core/error.h"
#include "model/llama_model.h"

namespace cvq {

std::vector<AttentionError> measure_attention_error(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                                    const std::vector<std::string>& specs,
                                                    const AttentionErrorOptions& o) {
  const int n = static_cast<int>(tokens.size());
  if (o.chunk < 1) throw Error("attention error: chunk must be >= 1");
  if (o.from >= n) {
    throw Error("attention error: --from " + std::to_string(o.from) + " leaves no query of the " + std::to_string(n) +
                " tokens");
  }
  const KvGeometry geo = model.kv_geometry();
  const int L = model.config().n_layers, q_dim = geo.q_dim();
  auto stream = make_kv_cache(o.reference, geo);  // the cache the model itself runs on
  auto ref = make_kv_cache(o.reference, geo);     // the reference answers, computed beside the methods'
  std::vector<std::unique_ptr<KvCache>> caches;
  for (const std::string& s : specs) caches.push_back(make_kv_cache(s, geo));
  std::vector<std::vector<double>> err(specs.size(), std::vector<double>(static_cast<size_t>(L), 0.0));
  // Σ_i d_i per method and layer [q_dim], and the number of queries summed.
  std::vector<std::vector<std::vector<double>>> err_sum(
      specs.size(), std::vector<std::vector<double>>(static_cast<size_t>(L), std::vector<double>(q_dim, 0.0)));
  std::vector<int64_t> n_queries(static_cast<size_t>(L), 0);
  std::vector<double> norm(static_cast<size_t>(L), 0.0);
  std::vector<float> out_ref, out;

  const LayerObserver observer = [&](int layer, const float* q, const float* k, const float* v,
                                     const int32_t* positions, int rows) {
    const size_t size = static_cast<size_t>(rows) * q_dim;
    out_ref.resize(size);
    out.resize(size);
    ref->append(layer, k, v, positions, rows);
    ref->attend(layer, q, positions, rows, out_ref.data());
    int first = 0;  // first row at or after `from`
    while (first < rows && positions[first] < o.from) ++first;
    for (int r = first; r < rows; ++r)
      for (int c = 0; c < q_dim; ++c) norm[layer] += std::pow(static_cast<double>(out_ref[r * size_t(q_dim) + c]), 2);
    n_queries[layer] += rows - first;
    for (size_t m = 0; m < caches.size(); ++m) {
      caches[m]->append(layer, k, v, positions, rows);
      caches[m]->attend(layer, q, positions, rows, out.data());
      double e = 0.0;
      std::vector<double>& sum = err_sum[m][layer];
      for (size_t i = static_cast<size_t>(first) * q_dim; i < size; ++i) {
        const double d = static_cast<double>(out[i]) - out_ref[i];
        e += d * d;
        sum[i % q_dim] += d;
      }
      err[m][layer] += e;
    }
  };
  std::vector<int32_t> positions(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) positions[static_cast<size_t>(i)] = i;
  for (int t0 = 0; t0 < n; t0 += o.chunk) {
    const int rows = std::min(o.chunk, n - t0);
    model.forward(tokens.data() + t0, positions.data() + t0, rows, *stream, LlamaModel::Logits::None, &observer);
  }
  std::vector<AttentionError> results(specs.size());
  for (size_t m = 0; m < specs.size(); ++m) {
    results[m].spec = specs[m];
    for (int l = 0; l < L; ++l) {
      const double rel = norm[l] > 0.0 ? std::sqrt(err[m][l] / norm[l]) : 0.0;
      results[m].layer_rel.push_back(rel);
      results[m].mean_rel += rel / L;
      double s2 = 0.0;
      for (double v : err_sum[m][l]) s2 += v * v;
      const double denom = static_cast<double>(n_queries[l]) * err[m][l];
      const double share = denom > 0.0 ? s2 / denom : 0.0;
      results[m].layer_bias_share.push_back(share);
      results[m].mean_bias_share += share / L;
    }
  }
  return results;
}

}  // namespace cvq
