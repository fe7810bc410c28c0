#pragma once
// Attention over CommVQ-coded values on the device (the CUDA side of kernels/cpu/commvq_values.h,
// docs/METHOD.md §6.2): accumulate the attention-weighted code vectors over the tokens (adds only,
// straight from the packed bits), then one small product with the codebook slice of each row's KV
// head and the per-channel scale. Same layouts as the CPU kernels (LSB-first code bits, fp16 p,
// codebook [code_bits × D] row-major, scale [D]).
#include <cstdint>

namespace cvq::cuda {

inline constexpr int kCommvqMaxValueRows = 64;

// acc[r·code_bits + j] += Σ_t weights[r·w_stride + t] · p_t · bit_j(code_t), rows <= 64.
void commvq_values_accumulate(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n_tokens,
                              int code_bits, const float* weights, int64_t w_stride, int rows, float* acc);

// out[r·out_stride + i] = s[kv(r)·d + i] · Σ_j acc[r][j] · C[j][kv(r)·d + i], i < head_dim, with
// kv(r) = first_kv_head + r / rows_per_kv_head (rows of one KV head are consecutive).
void commvq_values_project(const float* acc, int rows, int code_bits, const float* codebook, const float* scale,
                           int dim, int first_kv_head, int rows_per_kv_head, int head_dim, float* out,
                           int64_t out_stride);

// "Decode then attend", first step: v̂_t = s ⊙ (Σ_j bit_j(code_t) C[j]) · p_t for all D channels,
// into an fp16 store [n × out_stride]. Runs as unpack-to-fp16 + one cuBLAS GEMM (n × code_bits by
// code_bits × D); codebook16 is the codebook converted to fp16 ([code_bits × D]).
void commvq_decode_values(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n_tokens,
                          int code_bits, const uint16_t* codebook16, const float* scale, int dim, uint16_t* out,
                          int64_t out_stride);

}  // namespace cvq::cuda
