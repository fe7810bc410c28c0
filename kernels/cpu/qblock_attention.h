#pragma once
// Fused attention kernels over llama.cpp q8_0 / q4_0 rows (blocks of 32 along the head dim): each
// block is dequantized in registers (codes * d) and used at once for every query row, never
// materialized. Token t of the head starts at base + t*stride bytes; d (head dim) is a multiple of 32.
#include <cstdint>

#include "kernels/cpu/cpu_features.h"

namespace cvq {

enum class QBlockKind { Q8_0, Q4_0 };
int qblock_bytes(QBlockKind kind);  // 34 or 18 bytes per block of 32

// scores[r*ld + t] = scale * dot(q_r, k^_t), t in [0, n)
void qblock_scores(QBlockKind kind, const float* q, int rows, int d, const uint8_t* k, int64_t stride, int64_t n,
                   float scale, float* scores, int64_t ld);
// out[r*d + c] += sum_t p[r*ld + t] * v^_t[c]
void qblock_values(QBlockKind kind, const float* p, int64_t ld, int rows, int d, const uint8_t* v, int64_t stride,
                   int64_t n, float* out);

void qblock_scores_at(SimdLevel level, QBlockKind kind, const float* q, int rows, int d, const uint8_t* k,
                      int64_t stride, int64_t n, float scale, float* scores, int64_t ld);
void qblock_values_at(SimdLevel level, QBlockKind kind, const float* p, int64_t ld, int rows, int d, const uint8_t* v,
                      int64_t stride, int64_t n, float* out);

namespace detail {
void qblock_scores_avx512(QBlockKind kind, const float* q, int rows, int d, const uint8_t* k, int64_t stride, int64_t n,
                          float scale, float* scores, int64_t ld);
void qblock_values_avx512(QBlockKind kind, const float* p, int64_t ld, int rows, int d, const uint8_t* v,
                          int64_t stride, int64_t n, float* out);
}  // namespace detail

}  // namespace cvq
