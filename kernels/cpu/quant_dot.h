#pragma once
// Matrix-vector products with quantized weight rows: the decode hot path.
//
// Types: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K (others throw cvq::Error).
// n must be a multiple of the type's block size (32 or 256; any n for f32/f16/bf16).
//
// How the SIMD paths compute (avx2 / avx512):
//  * f32 / f16 / bf16 rows: float FMA against x in float, several accumulators.
//  * quantized rows: x is first quantized, once per call, to int8 in blocks of 32 with a float scale
//    (dx = amax/127, q = round-to-nearest-even(x/dx)), then each weight block is dotted in integers
//    (AVX-512 VNNI vpdpbusd, AVX2 vpmaddubsw) and scaled by d_w*dx. Weight offsets (q4_0's 8, q5_0's
//    16, q6_K's 32, q8_0's sign) are corrected exactly in integers; the q4_1/q5_1/q4_K/q5_K min term
//    uses the quantized block sum dx*sum(q). So the result equals dot(W, x^) up to float rounding,
//    with x^ the int8-quantized x, like llama.cpp (whose activation scales are coarser: fp16, and
//    per 256 for the K types).
//  * scalar: dequantize the row, double-accumulated dot (this is also the reference).
//
// Error bound (tested; y_ref = dot_row_reference):
//   float rows:      |y - y_ref| <= 1e-5 * sum_i |w_i x_i|                                (n <= 16384)
//   quantized rows:  |y - y_ref| <= sum_b (amax_b(x)/254) * sum_{i in b} |w_i|
//                                   + 1e-5 * sum_i |w_i| (|x_i| + amax_b(i)(x)/254)
//   with b the blocks of 32 of x and w the dequantized weights. In practice the error is about
//   1e-3 of sum_i |w_i x_i| (the per-element errors are independent and partly cancel).
// Inputs must be finite: a NaN or inf in x may not propagate through the quantized paths.
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/ggml_type.h"

namespace cvq {

// y[r] = dot(row r of W, x) for r in [0, n_rows); W rows are row_bytes apart, each of n elements.
// Single-threaded: the caller splits rows over threads. Uses active_simd_level().
void gemv_rows(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y);
float dot_row(GgmlType t, const void* row, const float* x, int64_t n);
// Several tokens (batched decode): y[k*ld_y + r] = dot(row r, x + k*n) for k in [0, n_tokens), each
// token's x quantized once per call and every 32-row tile read once for all tokens. Each value is
// what gemv_rows gives for that token, bit for bit. Single-threaded like gemv_rows.
void gemv_tokens(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n_tokens,
                 int64_t n, float* y, int64_t ld_y);
const char* simd_level_name();  // name of active_simd_level(): "avx512", "avx2", "scalar"

// The same at an explicit level (throws cvq::Error if this CPU lacks it): for tests and benchmarks.
void gemv_rows_at(SimdLevel level, GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x,
                  int64_t n, float* y);
float dot_row_at(SimdLevel level, GgmlType t, const void* row, const float* x, int64_t n);

// Reference: dequantize_row, then the dot product accumulated in double.
double dot_row_reference(GgmlType t, const void* row, const float* x, int64_t n);

// True if gemv at this level has a dedicated kernel for t (false: it dequantizes each row into a
// buffer and runs the float kernel of the same level, which is correct but slower).
bool gemv_has_fast_path(SimdLevel level, GgmlType t);

namespace detail {
// Per-ISA kernels (quant_dot_avx512.cpp / quant_dot_avx2.cpp). Arguments are already validated.
// Return false, computing nothing, when they have no kernel for t.
bool gemv_rows_avx512(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n,
                      float* y);
bool gemv_rows_avx2(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n,
                    float* y);
bool gemv_tokens_avx512(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x,
                        int64_t n_tokens, int64_t n, float* y, int64_t ld_y);
bool gemv_tokens_avx2(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n_tokens,
                      int64_t n, float* y, int64_t ld_y);
bool has_kernel_avx512(GgmlType t);
bool has_kernel_avx2(GgmlType t);
}  // namespace detail

}  // namespace cvq
