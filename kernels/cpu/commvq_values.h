#pragma once
// Attention over CommVQ-coded values (docs/METHOD.md §6.2), for one KV head g and the rows that attend to
// it (the query heads of its GQA group × the queries), over a block of cached tokens.
//
//   out[r] = s_g ⊙ [ (Σ_t a[r][t]·p_t·b_t) · C[:, g·d : (g+1)·d] ]
//
// Step 1, per block of tokens (adds only, straight from the packed bits):
//   acc[r][j] += Σ_t a[r][t]·p_t·bit_j(code_t)                     acc: rows × code_bits
// Step 2, once per query after all blocks (one small matmul with the codebook slice, then the scale):
//   out[r][i] = s[g·d + i] · Σ_j acc[r][j]·C[j][g·d + i]           i < d
// The scale multiplies after the codebook product (it is per channel, the sum is over tokens).
//
// Layouts (see src/commvq/value_codec.h): codes are code_bits = D·bits bits per token, LSB-first
// (bit j = bit j%8 of byte j/8), token t at codes + t·code_stride bytes; p is the per-token fp16
// magnitude; C is [code_bits x D] row-major; s is [D]; weights a[r][t] at weights + r·w_stride + t
// (attention probabilities; masked tokens are 0 and cost almost nothing).
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/cpu_features.h"

namespace cvq {

void commvq_values_accumulate(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n_tokens,
                              int code_bits, const float* weights, int64_t w_stride, int rows, float* acc);
void commvq_values_accumulate_at(SimdLevel level, const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16,
                                 int64_t n_tokens, int code_bits, const float* weights, int64_t w_stride, int rows,
                                 float* acc);

// out[r·out_stride + i], i < head_dim, for the codebook/scale columns of KV head kv_head.
void commvq_values_project(const float* acc, int rows, int code_bits, const float* codebook, const float* scale,
                           int dim, int kv_head, int head_dim, float* out, int64_t out_stride);

// Both steps for one block (acc zeroed here): the whole docs/METHOD.md §6.2 computation when the context is one block.
void commvq_values_attend(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n_tokens,
                          int code_bits, const float* weights, int64_t w_stride, int rows, const float* codebook,
                          const float* scale, int dim, int kv_head, int head_dim, float* out, int64_t out_stride);

// Reference, "decode then attend": v̂_t = s ⊙ (Σ_j bit_j C[j]) · p_t on the head's slice, then
// out[r] = Σ_t a[r][t]·v̂_t; double accumulation, scalar.
void commvq_values_reference(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n_tokens,
                             int code_bits, const float* weights, int64_t w_stride, int rows, const float* codebook,
                             const float* scale, int dim, int kv_head, int head_dim, float* out, int64_t out_stride);

namespace detail {
bool commvq_values_avx512_compiled();
// Returns false (computing nothing) when code_bits is not a multiple of 16.
bool commvq_values_accumulate_avx512(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16,
                                     int64_t n_tokens, int code_bits, const float* weights, int64_t w_stride, int rows,
                                     float* acc);
}  // namespace detail

}  // namespace cvq
