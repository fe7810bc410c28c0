#pragma once
// One layer's decode attention (one query token, all query heads) over a CommVQ-coded context on
// the device, two ways:
//  * commvq_attend_codes — on the codes (docs/METHOD.md §6.1 + §6.2): query tables, scores by gathers,
//    softmax, weighted code sums, one small codebook product per head. Nothing is decoded.
//  * commvq_attend_decoded — the naive baseline: decode every key (with RoPE) and value to fp16,
//    then fp16 flash-decoding attention.
// Both compute softmax(q·RoPE(k̂)/√d)·v̂ and agree to float/fp16 rounding.
#include <cstdint>

#include "kernels/cuda/commvq_scores_gpu.h"

namespace cvq::cuda {

struct CommvqLayerView {
  int n_head = 0, n_head_kv = 0, head_dim = 0;
  bool half_split = false;                     // RoPE pairing of the model's head layout
  int key_stages = 0;                          // R
  const float* key_xy = nullptr;               // n_kv × (R × 2 × 64 × h) codebook parameters
  const uint16_t* key_codes = nullptr;         // token t, KV head g: R codes at key_codes + (t·n_kv + g)·R
  const uint16_t* key_norms = nullptr;         // fp16 per token
  int value_code_bits = 0;                     // D·bits
  const uint8_t* value_codes = nullptr;        // token t at value_codes + t·value_code_bits/8
  const uint16_t* value_p = nullptr;           // fp16 per token
  const float* value_codebook = nullptr;       // [code_bits × D]
  const uint16_t* value_codebook16 = nullptr;  // the same in fp16 (for the decoded baseline)
  const float* value_scale = nullptr;          // [D]
  CosSinSource angles;                         // token t at angles.first_position + t
  int64_t n_tokens = 0;
  // Optional full-precision window after the coded tokens (docs/METHOD.md §8): post-RoPE fp16 keys and
  // values, token t at win_k/win_v + t·win_stride (head layout). Only commvq_attend_codes reads it.
  const uint16_t* win_k = nullptr;
  const uint16_t* win_v = nullptr;
  int64_t win_stride = 0;
  int64_t n_window = 0;
};

// q: n_head × d post-RoPE (head layout); out: n_head × d. Scratch is kept per thread.
void commvq_attend_codes(const CommvqLayerView& v, const float* q, float* out);
void commvq_attend_decoded(const CommvqLayerView& v, const float* q, float* out);

// In-place row softmax of rows × n scores at stride ld (one block per row).
void softmax_rows(float* x, int rows, int64_t n, int64_t ld);

}  // namespace cvq::cuda
