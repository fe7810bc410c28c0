#include <cublas_v2.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_gpu.h"

namespace cvq::cuda {
cublasHandle_t cublas_handle() {
  thread_local struct Holder {
    cublasHandle_t h = nullptr;
    Holder() { check(cublasCreate(&h), "cublasCreate"); }
    ~Holder() {
      if (h) cublasDestroy(h);
    }
  } holder;
  return holder.h;
}

void gemm_half_weights(HalfType type, const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x16,
                       int64_t n_tokens, float* y) {
  if (rows <= 0 || n_tokens <= 0) return;
  // Column-major view: W is cols × rows (ld cols), x is cols × T, y is rows × T: y = Wᵀ x.
  const cudaDataType_t t = type == HalfType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
  const float alpha = 1.0f, beta = 0.0f;
  check(cublasGemmEx(cublas_handle(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(n_tokens),
                     static_cast<int>(cols), &alpha, w, t, static_cast<int>(cols), x16, t, static_cast<int>(cols),
                     &beta, y, CUDA_R_32F, static_cast<int>(rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx (weights)");
}

void gemm_half_rows(const uint16_t* a, int64_t n, int64_t k, const uint16_t* b, int64_t m, float* y) {
  if (n <= 0 || m <= 0) return;
  // Column-major: yᵀ (m × n) = bᵀ (m × k, ld m) · aᵀ (k × n, ld k).
  const float alpha = 1.0f, beta = 0.0f;
  check(
      cublasGemmEx(cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(m), static_cast<int>(n),
                   static_cast<int>(k), &alpha, b, CUDA_R_16F, static_cast<int>(m), a, CUDA_R_16F, static_cast<int>(k),
                   &beta, y, CUDA_R_32F, static_cast<int>(m), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx (rows)");
}

void sgemm_row_major(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                     const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: swap the operands.
  check(cublasSgemm(cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
                    &alpha, b, ldb, a, lda, &beta, c, ldc),
        "cublasSgemm");
}

}  // namespace cvq::cuda
