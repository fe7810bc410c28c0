#pragma once
// Training of one layer's value codec with the LLM frozen (docs/METHOD.md §5.4), on activations from
// `collect`:
//   L = ½·MSE(v̂, v) + MSE(o_proj(Attn(q, k, v̂)), o_proj(Attn(q, k, v)))
// P = softmax(q·RoPE(k)ᵀ/√d) is fixed from the full-precision keys, causal within each collected
// sequence, so the attention term is a quadratic form in e_t = v̂_t − v_t:
//   Σ_i ||Σ_t Σ_h P_h[i,t]·W_h·e_t[g(h)]||²          (W_h: the o_proj columns of query head h)
// Training uses its per-token (diagonal) part: every token's own contribution, summed exactly over
// all queries of its sequence and all heads,  Σ_t Σ_{h,h'} G_t[h,h'] (W_h e_t)·(W_h' e_t)  with
// G_t[h,h'] = Σ_i P_h[i,t]·P_h'[i,t] precomputed once per layer; the cross terms between different
// tokens' errors (zero in expectation for independent per-token errors) are dropped so that a
// minibatch of random tokens gives an unbiased estimate without encoding whole sequences. The
// evaluation reports the exact attention-output error on held-out sequences.
//
// Gradients are written by hand (LayerNorm, Linear, GELU, Linear, Gumbel-softmax straight-through,
// codebook, the p normalization); AdamW; minibatches split into a fixed number of shards computed in
// parallel, so results depend on the seed and the options, not on the thread count.
#include <cstdint>
#include <utility>
#include <vector>

#include "commvq/value_codec.h"
#include "commvq/value_data.h"
#include "kernels/cpu/rope.h"

namespace cvq {

struct ValueTrainOptions {
  int bits = 2;
  int steps = 1500;
  int batch = 64;
  int shards = 2;  // the minibatch is split in this many parts (parallel; fixed for determinism)
  double lr = 1e-3;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  double grad_clip = 1.0;  // global L2 norm
  double tau = 1.0;        // Gumbel-softmax temperature
  uint64_t seed = 0;
  bool attention_loss = true;    // false: ½·MSE(v̂, v) only
  double holdout = 0.1;          // fraction of sequences (the last ones) kept for evaluation (>= 1 if >= 2 sequences)
  int64_t max_train_tokens = 0;  // > 0: train on the first sequences holding about this many tokens
  int curve_points = 20;         // loss curve entries in the report
  // After the gradient steps (commvq/value_refine.h): rounds of [encode the training tokens with
  // refine_sweeps of code refinement, refit the codebook by ridge least squares]. 0 rounds and 0
  // sweeps = the paper's codec as trained by gradient descent.
  int refit_rounds = 4;
  int refine_sweeps = 4;
  int64_t refit_tokens = 16384;  // > 0: the refit uses an evenly spaced subset of this many training tokens
  bool refit_attention_weights =
      true;  // weight tokens by their share of the docs/METHOD.md §5.4 loss (with attention data)
};

struct ValueEvalMetrics {
  int64_t tokens = 0;
  double rel_mse_values = 0.0;  // Σ||v̂ − v||² / Σ||v||²
  double rel_mse_attn = 0.0;  // exact, after o_proj: Σ||o(v̂) − o(v)||² / Σ||o(v)||² (0 without attention data)
  double rel_mse_attn_heads = 0.0;  // the same before o_proj (per-head attention outputs)
};

struct ValueTrainReport {
  int layer = -1;
  int steps = 0;
  int64_t train_tokens = 0;
  double gram_seconds = 0.0, train_seconds = 0.0, eval_seconds = 0.0;
  ValueEvalMetrics untrained, trained;  // on the held-out sequences
  ValueEvalMetrics gradient_only;       // after the gradient steps, before refit/refinement
  double refit_seconds = 0.0;
  std::vector<std::pair<int, double>> loss_curve;  // (step, mean training loss since the previous point)
};

// Trains a codec on d. attn may be null (or opts.attention_loss false): value MSE only; the data
// then needs only values. Evaluation uses the held-out sequences (all data if there is one sequence).
ValueCodec train_value_codec(const ValueLayerData& d, const Rope& rope, const ValueAttnProj* attn,
                             const ValueTrainOptions& opts, ValueTrainReport* report = nullptr);

// Exact evaluation of a codec on the given sequences (attention terms need keys/queries and attn).
ValueEvalMetrics evaluate_value_codec(const ValueCodec& codec, const ValueLayerData& d, const Rope& rope,
                                      const ValueAttnProj* attn, const std::vector<int>& sequences);

}  // namespace cvq
