#pragma once
// Records, per layer, what a forward pass shows the LayerObserver — keys before RoPE, values,
// queries after RoPE, positions and sequence ids — converted to F16 or F32 as they arrive. `collect`
// (collect/collect.h) writes them to disk; tests read them in memory.
#include <cstdint>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "kv/kv_cache.h"
#include "model/llama_model.h"

namespace cvq {

// Accumulates the observer's per-layer activations (converted to F16 or F32 as they arrive).
class ActivationRecorder {
 public:
  ActivationRecorder(const KvGeometry& geo, StDtype dtype);

  // Tokens observed from now on belong to this sequence id.
  void begin_sequence(int32_t seq_id) { seq_id_ = seq_id; }
  // Appends q/k/v/positions of each layer; pass it to LlamaModel::forward.
  const LayerObserver& observer() const { return observer_; }

  int64_t n_tokens(int layer) const { return static_cast<int64_t>(layers_[layer].positions.size()); }
  // The recorded tensors of one layer, as float (for tests and in-memory use).
  std::vector<float> keys(int layer) const;
  std::vector<float> values(int layer) const;
  std::vector<float> queries(int layer) const;
  const std::vector<int32_t>& positions(int layer) const { return layers_[layer].positions; }
  const std::vector<int32_t>& seq_ids(int layer) const { return layers_[layer].seq_ids; }

  // Writes one layer's tensors (keys, values, queries, positions, seq_ids) as safetensors.
  void write_layer(int layer, const std::string& path) const;
  void clear();

 private:
  struct Layer {
    std::vector<uint8_t> k, v, q;
    std::vector<int32_t> positions, seq_ids;
  };
  void append(std::vector<uint8_t>& dst, const float* src, int64_t count) const;
  std::vector<float> to_float(const std::vector<uint8_t>& src) const;

  KvGeometry geo_;
  StDtype dtype_;
  int32_t seq_id_ = 0;
  std::vector<Layer> layers_;
  LayerObserver observer_;
};

}  // namespace cvq
