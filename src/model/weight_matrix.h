#pragma once
// A weight matrix used in place from the GGUF map, in whatever block format the file has.
// matmul computes y[T x rows] = x[T x cols] * W^T: matrix-vector kernels for decode (int8 activation
// blocks, kernels/cpu/quant_dot.h), tile-wise dequantization + a GEMM for prefill, in one of two modes:
//   fp32 — tiles dequantized to fp32, OpenBLAS SGEMM (the reference arithmetic);
//   bf16 — tiles dequantized and rounded to bf16, activations rounded to bf16, fp32 sums
//          (kernels/cpu/gemm_bf16.h: AMX or AVX-512 BF16 where the CPU has them).
#include <cstdint>
#include <string>

#include "kernels/cpu/ggml_type.h"

namespace cvq {

struct GgufTensorInfo;

enum class MatmulMode { Fp32, Bf16 };
const char* matmul_mode_name(MatmulMode m);             // "fp32", "bf16"
MatmulMode parse_matmul_mode(const std::string& name);  // throws cvq::Error naming the accepted values

class WeightMatrix {
 public:
  WeightMatrix() = default;
  explicit WeightMatrix(const GgufTensorInfo& t);

  int64_t rows() const { return rows_; }  // output features
  int64_t cols() const { return cols_; }  // input features (contiguous)
  GgmlType type() const { return type_; }
  const std::string& name() const { return name_; }
  size_t bytes() const { return row_bytes_ * static_cast<size_t>(rows_); }

  // Up to this many tokens the product runs the matrix-vector kernels (each token's row the same
  // arithmetic as alone); from kGemvMaxTokens + 1 on, the GEMM of the mode.
  static constexpr int64_t kGemvMaxTokens = 15;
  void matmul(const float* x, int64_t n_tokens, float* y, MatmulMode mode = MatmulMode::Fp32) const;
  // Whether the bf16 mode can run this matrix (its column count is a multiple of 32).
  bool supports_bf16_gemm() const { return cols_ % 32 == 0; }
  // The same product with llama.cpp's CPU arithmetic (kernels/cpu/ggml_arith.h): activations in
  // 8-bit blocks, ggml's accumulation order. Q4_1 and Q8_0 weights; others are refused.
  void matmul_llamacpp(const float* x, int64_t n_tokens, float* y) const;
  void dequantize_row(int64_t r, float* dst) const;

 private:
  void matmul_gemv(const float* x, int64_t n_tokens, float* y) const;
  void matmul_fp32(const float* x, int64_t n_tokens, float* y) const;
  void matmul_bf16(const float* x, int64_t n_tokens, float* y) const;

  std::string name_;
  GgmlType type_ = GgmlType::F32;
  int64_t rows_ = 0, cols_ = 0;
  size_t row_bytes_ = 0;
  const uint8_t* data_ = nullptr;
};

}  // namespace cvq
