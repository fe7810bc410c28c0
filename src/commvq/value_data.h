#pragma once
// One layer's activations for value-codec training (as `collect` writes them), the frozen o_proj, and
// the causal attention probabilities the attention term of the loss is built from
// (commvq/value_trainer.h, docs/METHOD.md §5.4).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cpu/rope.h"

namespace cvq {

// One layer's activations: as `collect` writes them (collect/activation_recorder.h), as floats.
struct ValueLayerData {
  int layer = -1;
  int n_head = 0, n_head_kv = 0, head_dim = 0;
  int64_t n_tokens = 0;
  std::vector<float> values;         // [N x D]
  std::vector<float> keys_pre_rope;  // [N x D]
  std::vector<float> queries;        // [N x q_dim], after RoPE
  std::vector<int32_t> positions;    // [N]
  std::vector<int64_t> seq_starts;   // [n_seq + 1]
  int dim() const { return n_head_kv * head_dim; }
  int q_dim() const { return n_head * head_dim; }
  int n_sequences() const { return static_cast<int>(seq_starts.size()) - 1; }
};

// Reads a collect layer file; throws (naming the file) if its shapes disagree with the geometry.
ValueLayerData load_value_layer_data(const std::string& layer_file, int n_head, int n_head_kv, int head_dim);

// The frozen o_proj of the layer: [n_embd x q_dim] row-major (LlamaModel::dense_attn_output).
struct ValueAttnProj {
  const float* w_o = nullptr;
  int n_embd = 0;
  int n_head = 0, n_head_kv = 0, head_dim = 0;
  int q_dim() const { return n_head * head_dim; }
};

// G_t[h][h'] = Σ_i P_h[i,t]·P_h'[i,t] (over the queries i >= t of t's sequence) for every token t of
// the given sequences, written at row t of gram [N x H x H]; rows of other sequences are untouched.
// Threaded over sequences.
void value_attention_gram(const ValueLayerData& d, const Rope& rope, const std::vector<int>& sequences, float* gram);

// Sequence boundaries; data without any is one sequence.
std::vector<int64_t> value_sequence_starts(const ValueLayerData& d);

// Causal attention probabilities of one sequence [s0, s1), by blocks of queries: calls
// fn(i0, qb, ctx, P) with P = [H][qb][ctx] (sequence-local query rows i0.., keys 0..ctx-1, ctx = i0+qb;
// entries past the query's own index are 0). Keys get RoPE at their stored positions.
using ValueAttentionBlockFn = std::function<void(int i0, int qb, int ctx, const float* P)>;
void value_attention_blocks(const ValueLayerData& d, const Rope& rope, int64_t s0, int64_t s1,
                            const ValueAttentionBlockFn& fn);

}  // namespace cvq
