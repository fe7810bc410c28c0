#pragma once
// A weight matrix used in place from the GGUF map, in whatever block format the file has.
// matmul computes y[T x rows] = x[T x cols] * W^T: matrix-vector kernels for decode, tile-wise
// dequantization + SGEMM for prefill.
#include <cstdint>
#include <string>

#include "model/ggml_type.h"

namespace cvq {

struct GgufTensorInfo;

class WeightMatrix {
 public:
  WeightMatrix() = default;
  explicit WeightMatrix(const GgufTensorInfo& t);

  int64_t rows() const { return rows_; }  // output features
  int64_t cols() const { return cols_; }  // input features (contiguous)
  GgmlType type() const { return type_; }
  const std::string& name() const { return name_; }
  size_t bytes() const { return row_bytes_ * static_cast<size_t>(rows_); }

  void matmul(const float* x, int64_t n_tokens, float* y) const;
  // The same product with llama.cpp's CPU arithmetic (kernels/cpu/ggml_arith.h): activations in
  // 8-bit blocks, ggml's accumulation order. Q4_1 and Q8_0 weights; others are refused.
  void matmul_llamacpp(const float* x, int64_t n_tokens, float* y) const;
  void dequantize_row(int64_t r, float* dst) const;

 private:
  std::string name_;
  GgmlType type_ = GgmlType::F32;
  int64_t rows_ = 0, cols_ = 0;
  size_t row_bytes_ = 0;
  const uint8_t* data_ = nullptr;
};

}  // namespace cvq
