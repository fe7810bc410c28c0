#pragma once
// The trained CommVQ codebooks of one model, as one safetensors file: per layer and KV head the key
// codebook (RoPE-commutative residual stages), per layer the value codec, and JSON metadata (model
// identity, bit widths, stages, training settings, per-layer errors). numpy/PyTorch can open it;
// the `commvq:` KV method loads it and refuses a file made for another model.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commvq/key_codebook.h"
#include "commvq/value_codec.h"
#include "kv/kv_cache.h"

namespace cvq {

struct CommvqModelIdentity {
  std::string name;
  int n_layers = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
  RopeLayout rope_layout = RopeLayout::Adjacent;
  double rope_theta = 0.0;

  static CommvqModelIdentity of(const KvGeometry& g);
  nlohmann::json to_json() const;
  static CommvqModelIdentity from_json(const nlohmann::json& j);
  // Empty when compatible, otherwise what differs ("n_head_kv 3 vs 8, ...").
  std::string mismatch(const CommvqModelIdentity& other) const;
};

struct CommvqCodebook {
  CommvqModelIdentity model;
  int key_bits = 2;
  int value_bits = 2;
  int stages = 0;           // R key stages per head
  bool structured = true;   // false: plain-VQ ablation (no attention on codes for keys)
  nlohmann::json training;  // settings used
  nlohmann::json layers;    // per-layer report (errors, times)
  std::vector<KeyLayerCodebook> keys;
  std::vector<ValueCodec> values;

  void save(const std::string& path) const;
  static CommvqCodebook load(const std::string& path);
  // load() once per process per file version (path, size, modification time): caches of one grid
  // share the parsed codebook and its derived tables instead of re-reading the file.
  static std::shared_ptr<const CommvqCodebook> load_shared(const std::string& path);
  // Throws "<path>: codebook was made for <name> (...) but the model is <name> (...)".
  void check_compatible(const KvGeometry& g, const std::string& path) const;
  size_t param_bytes() const;
};

// param_bytes() of a codebook of this shape (keys: R stages per layer and KV head; the value codec:
// encoder MLP, codebook and scale per layer) without building one — `memory` without codebook=.
size_t commvq_param_bytes(const KvGeometry& g, int bits, int stages, bool structured);

// A random, untrained codebook with the geometry of g (key stages N(0, (0.3/(j+1))²), value codec
// PyTorch-style init, 2 refinement sweeps): exercises the code paths and their speed in tests and
// benchmarks, nothing more.
CommvqCodebook random_commvq_codebook(const KvGeometry& g, int bits, bool structured, unsigned seed);

// One layer's parts, for resumable training (the final file is these merged).
void save_commvq_layer(const std::string& path, int layer, const KeyLayerCodebook& keys, const ValueCodec& values,
                       const nlohmann::json& info);
bool load_commvq_layer(const std::string& path, int layer, int n_kv, int head_dim, RopeLayout layout,
                       KeyLayerCodebook* keys, ValueCodec* values, nlohmann::json* info);

}  // namespace cvq
