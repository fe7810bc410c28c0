#pragma once
// Building blocks of decode/prefill attention over a KV cache, per KV head and token range:
// scores of a few query rows against full-precision keys (fp16, bf16 or f32 rows) and the
// probability-weighted accumulation of values, plus the exp/sum step of a softmax. The windowed
// cache (src/kv/windowed_cache.h) combines them with the methods' fused kernels.
//
// Shapes: q is [rows x d] (contiguous), key/value token t of the head starts at base + t*stride,
// scores/p are [rows x ld] with column j = token j of the range. All kernels are single-threaded.
// Scalar versions are the reference; AVX2 / AVX-512 variants agree to float rounding.
#include <cstdint>

#include "kernels/cpu/cpu_features.h"

namespace cvq {

enum class HalfKind { F16, BF16 };

// scores[r*ld + t] = scale * dot(q_r, k_t), t in [0, n)
void kv_scores_half(HalfKind kind, const float* q, int rows, int d, const uint16_t* k, int64_t stride, int64_t n,
                    float scale, float* scores, int64_t ld);
void kv_scores_f32(const float* q, int rows, int d, const float* k, int64_t stride, int64_t n, float scale,
                   float* scores, int64_t ld);
// out[r*d + c] += sum_t p[r*ld + t] * v_t[c], t in [0, n)
void kv_values_half(HalfKind kind, const float* p, int64_t ld, int rows, int d, const uint16_t* v, int64_t stride,
                    int64_t n, float* out);
void kv_values_f32(const float* p, int64_t ld, int rows, int d, const float* v, int64_t stride, int64_t n, float* out);
// Many query rows at once (prefill): the same two products through SGEMM, f32 keys/values.
// Agree with kv_scores_f32 / kv_values_f32 to float rounding (the sums are ordered differently).
void kv_scores_gemm(const float* q, int rows, int d, const float* k, int64_t stride, int64_t n, float scale,
                    float* scores, int64_t ld);
void kv_values_gemm(const float* p, int64_t ld, int rows, int d, const float* v, int64_t stride, int64_t n, float* out);
// max of x[0..n), n >= 1
float kv_max(const float* x, int64_t n);
// x[i] = exp(x[i] - m) for i < n; returns the sum (float, relative error ~1e-6 against std::exp).
float kv_exp_sum(float* x, int64_t n, float m);

// The same at an explicit level (tests, benchmarks); throws cvq::Error if the CPU lacks it.
void kv_scores_half_at(SimdLevel level, HalfKind kind, const float* q, int rows, int d, const uint16_t* k,
                       int64_t stride, int64_t n, float scale, float* scores, int64_t ld);
void kv_values_half_at(SimdLevel level, HalfKind kind, const float* p, int64_t ld, int rows, int d, const uint16_t* v,
                       int64_t stride, int64_t n, float* out);
float kv_exp_sum_at(SimdLevel level, float* x, int64_t n, float m);

namespace detail {
// Per-ISA variants (kv_attention_avx512.cpp / _avx2.cpp).
void kv_scores_half_avx512(HalfKind kind, const float* q, int rows, int d, const uint16_t* k, int64_t stride, int64_t n,
                           float scale, float* scores, int64_t ld);
void kv_values_half_avx512(HalfKind kind, const float* p, int64_t ld, int rows, int d, const uint16_t* v,
                           int64_t stride, int64_t n, float* out);
void kv_scores_f32_avx512(const float* q, int rows, int d, const float* k, int64_t stride, int64_t n, float scale,
                          float* scores, int64_t ld);
void kv_values_f32_avx512(const float* p, int64_t ld, int rows, int d, const float* v, int64_t stride, int64_t n,
                          float* out);
float kv_exp_sum_avx512(float* x, int64_t n, float m);
float kv_max_avx512(const float* x, int64_t n);
// AVX2: return false (computing nothing) when d is not a multiple of 8.
bool kv_scores_half_avx2(HalfKind kind, const float* q, int rows, int d, const uint16_t* k, int64_t stride, int64_t n,
                         float scale, float* scores, int64_t ld);
bool kv_values_half_avx2(HalfKind kind, const float* p, int64_t ld, int rows, int d, const uint16_t* v, int64_t stride,
                         int64_t n, float* out);
float kv_exp_sum_avx2(float* x, int64_t n, float m);
}  // namespace detail

}  // namespace cvq
