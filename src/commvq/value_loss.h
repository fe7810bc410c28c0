#pragma once
// The value codec's training loss on one minibatch and its hand-written gradients (LayerNorm, Linear,
// GELU, Linear, Gumbel-softmax straight-through, codebook, the p normalization); the loss is
// described in commvq/value_trainer.h.
#include <vector>

#include "commvq/value_codec.h"
#include "commvq/value_data.h"

namespace cvq {

// One minibatch (or shard of one). Rows are tokens.
struct ValueBatch {
  int n = 0;
  const float* v = nullptr;      // [n x D] targets
  const float* xbar = nullptr;   // [n x D] normalized inputs (ValueCodec::normalize)
  const float* rho = nullptr;    // [n]
  const float* gram = nullptr;   // [n x H x H], or null: no attention term
  const float* noise = nullptr;  // [n x n_logits] Gumbel noise, or null (plain argmax)
  double norm_rows = 0;          // the means divide by this many rows (the whole minibatch)
  float tau = 1.0f;              // Gumbel-softmax temperature
};

enum class ValueRelaxation {
  HardStraightThrough,  // training: forward with the one-hot, backward through the softmax
  Soft,                 // forward with the softmax (smooth; for the finite-difference check)
};

struct ValueLossTerms {
  double value_mse = 0.0;  // Σ ||v̂ − v||² / (norm_rows · D)
  double attn_mse = 0.0;   // Σ_t Σ G (W e)·(W e) / (norm_rows · n_embd)
  double total() const { return 0.5 * value_mse + attn_mse; }
};

// Loss of a batch; when grads is non-null its trainable tensors (ln_gamma, ln_beta, w1, b1, w2, b2,
// codebook) are OVERWRITTEN with d total / d param (scale is frozen; its gradient is left zero).
// grads must have the codec's shape (e.g. value_codec_zeros_like).
ValueLossTerms value_loss_and_grad(const ValueCodec& codec, const ValueBatch& batch, const ValueAttnProj* attn,
                                   ValueRelaxation mode, ValueCodec* grads);

ValueCodec value_codec_zeros_like(const ValueCodec& c);
// The trainable tensors, in a fixed order (scale excluded).
std::vector<std::vector<float>*> value_trainable_params(ValueCodec& c);

}  // namespace cvq
