#pragma once
// WindowedCache: the cache management every compressing method shares (docs/METHOD.md §8), so a method
// only says how to compress a block of tokens and how to attend over its compressed store.
//
// Sequence layout of one layer (token index = order of append; positions ascending):
//
//     [ sink (full precision) | compressed store | full-precision window ]
//       0 .. S-1                S .. S+C-1         S+C .. n_tokens-1
//
// Keys and values are managed separately (C_k may differ from C_v: KIVI keeps a different number of
// values than keys in full precision). Full-precision tokens are stored as fp16 (bf16 optionally),
// keys post-RoPE for every method, so attention over them is one arithmetic whatever the method: a
// prefill (nothing compressed yet) gives bit-identical outputs under every method with the same
// prefill_signature(), which is what lets the grid share one prefill among them (tasks/task.h).
// Methods that quantize keys before RoPE (KVQuant, CommVQ: policy.keys_pre_rope) get them rotated
// back when they are compressed: R(-m)·fp16(R(m)·k) differs from fp16(k) by rounding only.
//
// When compression happens (lazily, at the *start* of append):
//   * append(layer, ...) first compresses the oldest window tokens per the policy's rules (below),
//     then stores the new tokens in the window. So every token of the current forward call is in
//     full precision when attend() runs: a single prefill call attends exactly; after it (at the next
//     append) the first floor(L/R)*R tokens are compressed and the rest stay in the window; in decode,
//     a window that holds R tokens is compressed as one block. R = 0 (q8_0, q4_0): everything older
//     than the current call is compressed.
//   * settle() applies the pending compression now (what the next append would do first). It changes
//     no attention result; it makes bytes() show the state the method keeps between calls.
//   Rules for w window tokens (oldest first), R = policy.window:
//     Blocks   : R > 0 -> compress floor(w/R)*R (whole blocks of R tokens); R == 0 -> all w.
//     KeepLast : compress max(0, w - R) (keep the R most recent tokens; KIVI values).
//     Never    : compress nothing (the fp16 / bf16 reference).
//   The compressed counts after n tokens (settled) do not depend on how the tokens were chunked:
//   Blocks -> floor((n-S)/R)*R, KeepLast -> max(0, n-S-R).
//
// Attention (per query, over the tokens whose position <= the query's position; scale 1/sqrt(d)):
//   one softmax over [scores on sink | scores on compressed keys | scores on window keys], then
//   out = P_sink·V_sink + P_c·V̂_c + P_window·V_window (with the value split C_v).
//   * Native mode: the derived class's fused kernels score and accumulate directly on its compressed
//     store; full-precision tokens go through fp16 kernels (kernels/cpu/kv_attention.h). Work is split
//     over (KV head, token range) tasks with a per-range softmax that is merged exactly
//     (flash-decoding), so decode at long context uses every thread.
//   * Simulated mode: the base additionally keeps float copies of every token — compressed ones as the
//     derived class decodes them, window ones as fp16-rounded — and attends with
//     kernels/cpu/attention.h. Native and simulated agree to float rounding (tested generically).
//   Both modes store the same compressed data, so bytes() is the same in both.
//
// Hooks a derived class implements (compressed index i is sequence index S + i; all layers separate):
//   compress_keys(layer, first, n, k, positions)   take the next n keys (compressed indices
//       [first, first+n)) into the compressed store. k: [n x kv_dim] floats, the fp16-rounded window
//       keys, post-RoPE (rotated back to pre-RoPE if policy.keys_pre_rope). Under WindowRule::Blocks, R > 0,
//       n is a multiple of R. compress_values likewise (v: [n x kv_dim]).
//   decode_keys(layer, first, n, out) / decode_values(...)   (simulated mode, and tests) write the
//       dequantized tokens [first, first+n) as floats [n x kv_dim], keys in the method's key domain
//       (the base applies RoPE to pre-RoPE keys). Any range of already compressed tokens.
//   native_scores(layer, kv_head, q, rows, scale, t0, t1, scores, ld)
//       scores[r*ld + (t - t0)] = scale * dot(q_r, k̂_t) for t in [t0, t1) (compressed indices) and the
//       `rows` query vectors q_r = q + r*d (post-RoPE, of query heads that share kv_head; rows come
//       from one or several query tokens). k̂_t is the key post-RoPE (position: compressed_positions()).
//   native_values(layer, kv_head, p, ld, rows, t0, t1, out)
//       out[r*d + c] += sum_{t in [t0,t1)} p[r*ld + (t - t0)] * v̂_t[kv_head*d + c].
//       Ranges [t0, t1) are arbitrary (not aligned to groups/blocks); p may be 0 for masked tokens.
//   compressed_bytes(layer)               bytes the compressed store of `layer` holds now.
//   compressed_bytes_for(n_keys, n_values) the same, analytically, for one layer holding that many
//       compressed keys and values (projected_bytes() is built on it and must equal bytes()).
//   clear_compressed()                    drop every layer's compressed store.
// Thread safety: native_* and decode_* are const and are called concurrently from the thread pool;
// compress_* and clear_compressed are called from the caller's thread (they may use the pool).
#include <cstdint>
#include <string>
#include <vector>

#include "kv/kv_cache.h"

namespace cvq {

class KvSpec;

enum class KvExecMode { Native, Simulated };
// Reads option "mode" (native | simulated; default native) from a spec; throws naming the spec.
KvExecMode parse_kv_exec_mode(const KvSpec& spec);
const char* kv_exec_mode_name(KvExecMode m);

enum class WindowRule { Blocks, KeepLast, Never };

struct WindowPolicy {
  int window = 128;  // R, full-precision window in tokens
  int sink = 0;      // S, leading tokens never compressed (attention sink)
  WindowRule key_rule = WindowRule::Blocks;
  WindowRule value_rule = WindowRule::Blocks;
  bool keys_pre_rope = false;  // compress_keys receives (and decode_keys returns) keys before RoPE
  bool bf16 = false;           // full-precision tokens as bf16 instead of fp16
  bool llamacpp = false;       // attention with llama.cpp's arithmetic (nothing compressed, fp16)
};

// Number of the w oldest window tokens that a rule compresses (see the header comment).
int64_t window_rule_compress_count(WindowRule rule, int window, int64_t w);

class WindowedCache : public KvCache {
 public:
  WindowedCache(KvGeometry g, WindowPolicy policy, KvExecMode mode);

  void append(int layer, const float* k_pre_rope, const float* v, const int32_t* positions, int n) final;
  void attend(int layer, const float* q_post_rope, const int32_t* positions, int n, float* out) final;
  size_t bytes() const final;
  int64_t n_tokens(int layer) const final { return static_cast<int64_t>(layers_[layer].positions.size()); }
  void clear() final;
  // Bytes after n tokens have been appended (in any chunking) and settled, all layers.
  size_t projected_bytes(int64_t n_tokens) const override;
  // Its full-precision part (sink + windows), all layers.
  size_t projected_window_bytes(int64_t n_tokens) const;

  // Applies the compression the next append would do first (all layers).
  void settle();
  void settle_layer(int layer) final;
  // Every cached token of `layer` as floats ([n_tokens x kv_dim] each; keys post-RoPE): compressed
  // tokens decoded, full-precision ones converted. The dequantize-then-attend baseline and debugging.
  void materialize(int layer, float* k_post_rope, float* v) const;

  const WindowPolicy& policy() const { return policy_; }
  bool llamacpp_attention() const final { return policy_.llamacpp; }
  void set_bf16_prefill_attention(bool on) final { bf16_prefill_ = on; }
  // Full-precision storage, execution mode and sink: what decides the prefill's arithmetic.
  std::string prefill_signature() const final;
  KvExecMode mode() const { return mode_; }
  int64_t n_sink(int layer) const;
  int64_t n_compressed_keys(int layer) const { return layers_[layer].n_comp_k; }
  int64_t n_compressed_values(int layer) const { return layers_[layer].n_comp_v; }
  int64_t n_window_keys(int layer) const;    // full-precision keys after the sink
  int64_t n_window_values(int layer) const;  // full-precision values after the sink

 protected:
  // ---- hooks (see the header comment) ----
  virtual void compress_keys(int layer, int64_t first, int n, const float* k, const int32_t* positions);
  virtual void compress_values(int layer, int64_t first, int n, const float* v, const int32_t* positions);
  virtual void decode_keys(int layer, int64_t first, int n, float* out) const;
  virtual void decode_values(int layer, int64_t first, int n, float* out) const;
  virtual void native_scores(int layer, int kv_head, const float* q, int rows, float scale, int64_t t0, int64_t t1,
                             float* scores, int64_t ld) const;
  virtual void native_values(int layer, int kv_head, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1,
                             float* out) const;
  virtual size_t compressed_bytes(int /*layer*/) const { return 0; }
  virtual size_t compressed_bytes_for(int64_t /*n_keys*/, int64_t /*n_values*/) const { return 0; }
  virtual void clear_compressed() {}

  // Positions of compressed tokens: compressed index i is at compressed_positions(layer)[i].
  const int32_t* compressed_positions(int layer) const;

 private:
  // Full-precision tokens, head-major so each KV head's tokens stream contiguously:
  // head h holds [n x head_dim] fp16/bf16 values.
  struct HalfRows {
    std::vector<std::vector<uint16_t>> heads;
    int64_t n = 0;
    const uint16_t* at(int h, int64_t t, int d) const { return heads[h].data() + t * d; }
    size_t bytes() const;
  };
  struct Layer {
    std::vector<int32_t> positions;  // every token
    HalfRows sink_k, sink_v;         // the first min(n, S) tokens
    HalfRows win_k, win_v;           // window tokens
    int64_t n_comp_k = 0, n_comp_v = 0;
    std::vector<float> sim_k, sim_v;  // simulated mode: [n_tokens x kv_dim], post-RoPE keys
  };
  void compress_pending(int layer);
  void check_layer(int layer) const;  // throws for a layer outside [0, n_layers)
  void attend_native(int layer, const float* q, const int32_t* visible, int n, float* out);
  static void pool_widen_half(const Layer& L, bool bf16, int64_t S, int64_t n_full_k, int64_t n_full_v, int d, int Hkv,
                              float* fk, float* fv);
  void attend_simulated(int layer, const float* q, const int32_t* visible, int n, float* out);
  void attend_llamacpp(int layer, const float* q, const int32_t* visible, int n, float* out);
  float half_to_float(uint16_t h) const;
  uint16_t float_to_half(float f) const;

  WindowPolicy policy_;
  KvExecMode mode_;
  bool bf16_prefill_ = false;
  std::vector<Layer> layers_;
};

}  // namespace cvq
