#include "model/weight_matrix.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/ggml_arith.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_dot.h"
#include "model/gguf.h"

namespace cvq {
namespace {
// Up to WeightMatrix::kGemvMaxTokens tokens the matrix-vector kernels (weights read once per tile,
// every token's product over it) beat dequantizing the whole matrix for a GEMM.
constexpr int64_t kTileRows = 64;
}  // namespace

WeightMatrix::WeightMatrix(const GgufTensorInfo& t)
    : name_(t.name), type_(t.type), rows_(t.rows()), cols_(t.dims[0]), data_(t.data) {
  if (t.dims.size() > 2) throw Error("tensor '" + t.name + "' is not a matrix");
  if (!ggml_type_info(t.type).supported) {
    throw Error(
        "tensor '" + t.name + "' has type " + ggml_type_name(static_cast<uint32_t>(t.type)) +
        ", which this build cannot compute with (supported: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q4_K q5_K q6_K)");
  }
  row_bytes_ = ggml_row_bytes(t.type, cols_);
}

void WeightMatrix::dequantize_row(int64_t r, float* dst) const {
  cvq::dequantize_row(type_, data_ + static_cast<size_t>(r) * row_bytes_, dst, cols_);
}

void WeightMatrix::matmul_llamacpp(const float* x, int64_t n_tokens, float* y) const {
  if (type_ != GgmlType::Q4_1 && type_ != GgmlType::Q8_0) {
    throw Error("llama.cpp arithmetic: tensor '" + name_ + "' is " + ggml_type_name(static_cast<uint32_t>(type_)) +
                "; this mode reproduces q4_1 and q8_0 weights only");
  }
  GgmlQ8Rows a;
  ggml_quantize_q8(x, n_tokens, cols_, a);
  const bool q41 = type_ == GgmlType::Q4_1;
  ThreadPool::global().parallel_for(
      rows_,
      [&](int64_t begin, int64_t end, int) {
        if (q41) {
          ggml_matmul_q4_1(data_, row_bytes_, begin, end, a, y, rows_);
        } else {
          ggml_matmul_q8_0(data_, row_bytes_, begin, end, a, y, rows_);
        }
      },
      64);
}

const char* matmul_mode_name(MatmulMode m) { return m == MatmulMode::Bf16 ? "bf16" : "fp32"; }

MatmulMode parse_matmul_mode(const std::string& name) {
  if (name == "fp32") return MatmulMode::Fp32;
  if (name == "bf16") return MatmulMode::Bf16;
  throw Error("unknown matmul mode '" + name + "' (expected fp32 or bf16)");
}

void WeightMatrix::matmul(const float* x, int64_t n_tokens, float* y, MatmulMode mode) const {
  if (n_tokens <= kGemvMaxTokens) return matmul_gemv(x, n_tokens, y);
  if (mode == MatmulMode::Bf16) {
    if (!supports_bf16_gemm()) {
      throw Error("matmul=bf16: tensor '" + name_ + "' has " + std::to_string(cols_) +
                  " columns, not a multiple of 32");
    }
    return matmul_bf16(x, n_tokens, y);
  }
  matmul_fp32(x, n_tokens, y);
}

void WeightMatrix::matmul_gemv(const float* x, int64_t n_tokens, float* y) const {
  ThreadPool& pool = ThreadPool::global();
  if (n_tokens == 1) {
    pool.parallel_for(
        rows_,
        [&](int64_t begin, int64_t end, int) {
          gemv_rows(type_, data_ + static_cast<size_t>(begin) * row_bytes_, row_bytes_, end - begin, x, cols_,
                    y + begin);
        },
        256);
    return;
  }
  // A few tokens (batched decode): the same row ranges as one token, each token's activation
  // quantized once per range and each tile of rows read once for all tokens (kernels/cpu/quant_dot.h).
  pool.parallel_for(
      rows_,
      [&](int64_t begin, int64_t end, int) {
        gemv_tokens(type_, data_ + static_cast<size_t>(begin) * row_bytes_, row_bytes_, end - begin, x, n_tokens, cols_,
                    y + begin, rows_);
      },
      256);
}

void WeightMatrix::matmul_fp32(const float* x, int64_t n_tokens, float* y) const {
  ThreadPool& pool = ThreadPool::global();
  const int64_t n_tiles = (rows_ + kTileRows - 1) / kTileRows;
  pool.parallel_for(n_tiles, [&](int64_t tile_begin, int64_t tile_end, int) {
    std::vector<float> tile(static_cast<size_t>(kTileRows * cols_));
    for (int64_t tile_i = tile_begin; tile_i < tile_end; ++tile_i) {
      const int64_t r0 = tile_i * kTileRows;
      const int64_t nr = std::min(kTileRows, rows_ - r0);
      const float* w;
      if (type_ == GgmlType::F32) {
        w = reinterpret_cast<const float*>(data_ + static_cast<size_t>(r0) * row_bytes_);
      } else {
        for (int64_t r = 0; r < nr; ++r) dequantize_row(r0 + r, tile.data() + r * cols_);
        w = tile.data();
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(nr),
                  static_cast<int>(cols_), 1.0f, x, static_cast<int>(cols_), w, static_cast<int>(cols_), 0.0f, y + r0,
                  static_cast<int>(rows_));
    }
  });
}

void WeightMatrix::matmul_bf16(const float* x, int64_t n_tokens, float* y) const {
  ThreadPool& pool = ThreadPool::global();
  std::vector<uint16_t> xb(static_cast<size_t>(bf16_padded_tokens(n_tokens) * cols_));
  pool.parallel_for(
      n_tokens, [&](int64_t t0, int64_t t1, int) { convert_rows_bf16(x, cols_, n_tokens, cols_, t0, t1, xb.data()); },
      16);
  const int64_t n_tiles = (rows_ + kTileRows - 1) / kTileRows;
  pool.parallel_for(n_tiles, [&](int64_t tile_begin, int64_t tile_end, int) {
    std::vector<float> tile(static_cast<size_t>(kTileRows * cols_));
    std::vector<uint16_t> packed(bf16_packed_elements(kTileRows, cols_));
    for (int64_t tile_i = tile_begin; tile_i < tile_end; ++tile_i) {
      const int64_t r0 = tile_i * kTileRows;
      const int64_t nr = std::min(kTileRows, rows_ - r0);
      for (int64_t r = 0; r < nr; ++r) dequantize_row(r0 + r, tile.data() + r * cols_);
      pack_bf16_rows(tile.data(), cols_, nr, cols_, packed.data());
      gemm_bf16(xb.data(), n_tokens, cols_, packed.data(), nr, y + r0, rows_);
    }
  });
}

}  // namespace cvq
