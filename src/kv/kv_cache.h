#pragma once
// The KV-cache seam. A method stores keys and values its own way and answers attention queries.
// RoPE of keys is the cache's business: append() receives keys *before* RoPE, so methods that
// quantize pre-RoPE keys (CommVQ, KVQuant) and post-RoPE keys (FP16, KIVI, q8_0) share one seam.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/rope.h"

namespace cvq {

struct KvGeometry {
  int n_layers = 0;
  int n_head = 0;     // query heads
  int n_head_kv = 0;  // key/value heads
  int head_dim = 0;
  Rope rope;
  std::string model_name;  // general.name of the model (codebooks check it); empty for presets
  std::string model_path;  // the file or folder it was loaded from (calibration defaults sit beside it)
  int kv_dim() const { return n_head_kv * head_dim; }
  int q_dim() const { return n_head * head_dim; }
};

class KvCache {
 public:
  explicit KvCache(KvGeometry g) : geo_(std::move(g)) {}
  virtual ~KvCache() = default;

  // k_pre_rope, v: [n x kv_dim] for tokens at positions[0..n), appended in order.
  virtual void append(int layer, const float* k_pre_rope, const float* v, const int32_t* positions, int n) = 0;
  // q_post_rope, out: [n x q_dim]. Query i attends to every cached token whose position is
  // <= positions[i] (causal), with scale 1/sqrt(head_dim).
  virtual void attend(int layer, const float* q_post_rope, const int32_t* positions, int n, float* out) = 0;
  // Every byte this cache stores (codes, scales, windows, side stores), all layers.
  virtual size_t bytes() const = 0;
  // What bytes() is after n tokens have been appended (and, for windowed methods, settled), all
  // layers, computed analytically. The default throws: a method without it cannot be used by `memory`.
  virtual size_t projected_bytes(int64_t n_tokens) const;
  // Bytes the method holds whatever the context — codebooks, value encoders, calibration tables: a
  // fixed per-model cost, not in bytes(). 0 for fp16 and the min-max quantizers.
  virtual size_t fixed_bytes() const { return 0; }
  virtual int64_t n_tokens(int layer) const = 0;
  virtual void clear() = 0;
  virtual std::string spec() const = 0;
  // True when attend() reproduces llama.cpp's attention arithmetic (LlamaModel::use_llamacpp_arithmetic).
  virtual bool llamacpp_attention() const { return false; }
  // The model's matmul=bf16 mode asks caches to attend over full-precision tokens in bf16 too when
  // a call has many queries (prefill; kernels/cpu/attention_bf16.h). Methods without it ignore it.
  virtual void set_bf16_prefill_attention(bool on) { (void)on; }
  // Caches whose non-empty signatures are equal compute the same attention, bit for bit, for a
  // prefill into an empty cache, so one forward pass can fill them all (tasks/shared_prefill.h).
  // Empty: this method's prefill is its own.
  virtual std::string prefill_signature() const { return {}; }
  // Does now the compression of `layer` that its next append would do first (windowed methods
  // compress lazily, kv/windowed_cache.h); outputs are unchanged. Batched decode calls it before the
  // sequences' appends run side by side, so a prompt's compression gets every thread.
  virtual void settle_layer(int layer) { (void)layer; }

  const KvGeometry& geometry() const { return geo_; }

 protected:
  KvGeometry geo_;
};

// For each query position, how many leading cached tokens (positions sorted ascending) it may see.
void visible_counts(const std::vector<int32_t>& cached_positions, const int32_t* q_positions, int n, int32_t* out);
}  // namespace cvq
