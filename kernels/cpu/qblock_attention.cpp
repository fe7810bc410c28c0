#include "kernels/cpu/qblock_attention.h"

#include <vector>

#include "core/error.h"
#include "kernels/cpu/quant_blocks.h"

namespace cvq {
namespace {

GgmlType ggml_of(QBlockKind kind) { return kind == QBlockKind::Q8_0 ? GgmlType::Q8_0 : GgmlType::Q4_0; }

// Reference: dequantize each token (llama.cpp's dequantize_row), then plain float loops.
void scores_scalar(QBlockKind kind, const float* q, int rows, int d, const uint8_t* k, int64_t stride, int64_t n,
                   float scale, float* scores, int64_t ld) {
  std::vector<float> row(static_cast<size_t>(d));
  for (int64_t t = 0; t < n; ++t) {
    dequantize_row(ggml_of(kind), k + t * stride, row.data(), d);
    for (int r = 0; r < rows; ++r) {
      float acc = 0.0f;
      for (int c = 0; c < d; ++c) acc += q[static_cast<int64_t>(r) * d + c] * row[c];
      scores[r * ld + t] = scale * acc;
    }
  }
}

void values_scalar(QBlockKind kind, const float* p, int64_t ld, int rows, int d, const uint8_t* v, int64_t stride,
                   int64_t n, float* out) {
  std::vector<float> row(static_cast<size_t>(d));
  for (int64_t t = 0; t < n; ++t) {
    dequantize_row(ggml_of(kind), v + t * stride, row.data(), d);
    for (int r = 0; r < rows; ++r) {
      const float w = p[r * ld + t];
      if (w == 0.0f) continue;
      for (int c = 0; c < d; ++c) out[static_cast<int64_t>(r) * d + c] += w * row[c];
    }
  }
}

void check(SimdLevel level, int d) {
  if (!cpu_supports(level)) throw Error(std::string("q-block attention: this CPU lacks ") + simd_level_name(level));
  if (d % 32 != 0) throw Error("q-block attention: head dim " + std::to_string(d) + " is not a multiple of 32");
}

}  // namespace

int qblock_bytes(QBlockKind kind) { return kind == QBlockKind::Q8_0 ? 34 : 18; }

void qblock_scores_at(SimdLevel level, QBlockKind kind, const float* q, int rows, int d, const uint8_t* k,
                      int64_t stride, int64_t n, float scale, float* scores, int64_t ld) {
  check(level, d);
  if (n <= 0) return;
  if (level == SimdLevel::Avx512)
    return detail::qblock_scores_avx512(kind, q, rows, d, k, stride, n, scale, scores, ld);
  scores_scalar(kind, q, rows, d, k, stride, n, scale, scores, ld);
}

void qblock_values_at(SimdLevel level, QBlockKind kind, const float* p, int64_t ld, int rows, int d, const uint8_t* v,
                      int64_t stride, int64_t n, float* out) {
  check(level, d);
  if (n <= 0) return;
  if (level == SimdLevel::Avx512) return detail::qblock_values_avx512(kind, p, ld, rows, d, v, stride, n, out);
  values_scalar(kind, p, ld, rows, d, v, stride, n, out);
}

void qblock_scores(QBlockKind kind, const float* q, int rows, int d, const uint8_t* k, int64_t stride, int64_t n,
                   float scale, float* scores, int64_t ld) {
  qblock_scores_at(active_simd_level(), kind, q, rows, d, k, stride, n, scale, scores, ld);
}

void qblock_values(QBlockKind kind, const float* p, int64_t ld, int rows, int d, const uint8_t* v, int64_t stride,
                   int64_t n, float* out) {
  qblock_values_at(active_simd_level(), kind, p, ld, rows, d, v, stride, n, out);
}

}  // namespace cvq
