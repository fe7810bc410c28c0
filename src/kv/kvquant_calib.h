#pragma once
// KVQuant's offline calibration (BASELINES.md): per layer, per-channel outlier thresholds of the
// pre-RoPE keys (the outliers/2 and 1 - outliers/2 percentiles over the calibration tokens, e.g.
// 0.5% / 99.5%) and, per bit width, the nuq lookup tables of keys and values (exact unweighted 1-D
// k-means on the normalized dense values — keys normalized by their channel's thresholds, values per
// token by that token's own percentile thresholds, as the cache does online), with and without Q-Norm.
//
// File (safetensors, `commvq-bench calibrate-kvquant` writes it):
//   key_lo, key_hi                 F32 [n_layers x kv_dim]   per-channel thresholds
//   key_centroids_<b>bit           F32 [n_layers x 2^b]      k-means centroids (ascending)
//   key_qnorm_<b>bit               F32 [n_layers x 2^b]      Q-Norm levels for those centroids
//   value_centroids_<b>bit, value_qnorm_<b>bit               the same for values
//   metadata "format" = "commvq-bench/kvquant-calibration/1"; "kvquant" = JSON string: model identity
//   {name, n_layers, n_head, n_head_kv, head_dim, rope_theta}, outliers, bits, n_tokens, kmeans, and
//   whatever the writer adds (sources, ctx, model path and sha256).
// A file is refused for a model of another geometry (layers, heads, head dim, RoPE theta).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kv/kv_cache.h"
#include "kv/nuq.h"

namespace cvq {

struct KvQuantModelId {
  std::string name;
  int n_layers = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
  double rope_theta = 0.0;
  static KvQuantModelId from(const KvGeometry& g, const std::string& name);
  std::string describe() const;  // "'name' (30 layers, 9 heads / 3 KV heads, head dim 64, RoPE theta 100000)"
};

struct KvQuantLuts {
  std::vector<float> key_centroids, key_qnorm, value_centroids, value_qnorm;  // [n_layers x 2^b]
};

struct KvQuantCalibration {
  KvQuantModelId model;
  double outliers = 0.01;
  int64_t n_tokens = 0;
  std::vector<float> key_lo, key_hi;               // [n_layers x kv_dim]
  std::map<int, KvQuantLuts> luts;                 // by bit width
  nlohmann::json info = nlohmann::json::object();  // extra provenance written to the metadata

  int kv_dim() const { return model.n_head_kv * model.head_dim; }
  void save(const std::string& path) const;
  static KvQuantCalibration load(const std::string& path);
  // Throws "<path>: ... is for model X; this model is Y ..." when the geometry differs (and the name,
  // when expected_name is given and both are known).
  void check_model(const KvGeometry& g, const std::string& path, const std::string& expected_name = "") const;
  // The layer's lookup table for keys or values at `bits` (Q-Norm levels when qnorm).
  NuqLut lut(int layer, bool keys, int bits, bool qnorm, const std::string& path) const;
};

// The file the cache looks for when a spec gives no calib=: next to the model, "<model>.kvquant.safetensors"
// (the .gguf extension replaced).
std::string kvquant_default_calib_path(const std::string& model_path);

// Accumulates calibration statistics from per-layer pre-RoPE keys and values (feed it from
// LlamaModel::forward's LayerObserver), then computes thresholds and lookup tables.
class KvQuantCalibrator {
 public:
  KvQuantCalibrator(const KvGeometry& g, double outliers, int hist_bins = 1 << 16);
  void add(int layer, const float* k_pre_rope, const float* v, int n);
  int64_t n_tokens(int layer) const { return static_cast<int64_t>(keys_[layer].size()) / geo_.kv_dim(); }
  // Thresholds and LUTs for each bit width in `bits` (each in 1..8). Uses the layer threads.
  KvQuantCalibration finish(const std::vector<int>& bits, const std::string& model_name) const;

 private:
  KvGeometry geo_;
  double outliers_;
  int hist_bins_;
  std::vector<std::vector<uint16_t>> keys_;  // per layer [n x kv_dim] fp16 (what the window stores)
  std::vector<NuqHistogram> value_hist_;
  std::vector<int32_t> scratch_, out_idx_;
};

}  // namespace cvq
