#pragma once
// Weight GEMMs through cuBLAS: y[T × rows] = x[T × cols] · Wᵀ with W stored row-major [rows × cols]
// in fp16 or bf16 (as loaded from the GGUF), activations converted to the same type, fp32
// accumulation and fp32 output.
#include <cstdint>

namespace cvq::cuda {

enum class HalfType { F16, BF16 };

// x16: T × cols half activations (converted by the caller, see norm_act_gpu.h float_to_half).
void gemm_half_weights(HalfType type, const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x16,
                       int64_t n_tokens, float* y);
// y[n × m] = a[n × k] · b[k × m], all row-major, a and b fp16, y fp32.
void gemm_half_rows(const uint16_t* a, int64_t n, int64_t k, const uint16_t* b, int64_t m, float* y);
// Plain fp32 row-major GEMM: C[m × n] = alpha · op(A) · op(B) + beta · C, op = transpose when the flag is set
// (A is m × k after op, B is k × n after op; lda/ldb/ldc are row-major leading dimensions).
void sgemm_row_major(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                     const float* b, int ldb, float beta, float* c, int ldc);

}  // namespace cvq::cuda
