#include "kernels/cpu/kv_attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/fp16.h"

namespace cvq {
namespace {

inline float half_value(HalfKind kind, uint16_t h) {
  return kind == HalfKind::BF16 ? bf16_to_float(h) : fp16_to_float(h);
}

void scores_half_scalar(HalfKind kind, const float* q, int rows, int d, const uint16_t* k, int64_t stride, int64_t n,
                        float scale, float* scores, int64_t ld) {
  for (int64_t t = 0; t < n; ++t) {
    const uint16_t* kt = k + t * stride;
    for (int r = 0; r < rows; ++r) {
      const float* qr = q + static_cast<int64_t>(r) * d;
      float acc = 0.0f;
      for (int c = 0; c < d; ++c) acc += qr[c] * half_value(kind, kt[c]);
      scores[r * ld + t] = scale * acc;
    }
  }
}

void values_half_scalar(HalfKind kind, const float* p, int64_t ld, int rows, int d, const uint16_t* v, int64_t stride,
                        int64_t n, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    const uint16_t* vt = v + t * stride;
    for (int r = 0; r < rows; ++r) {
      const float w = p[r * ld + t];
      if (w == 0.0f) continue;
      float* o = out + static_cast<int64_t>(r) * d;
      for (int c = 0; c < d; ++c) o[c] += w * half_value(kind, vt[c]);
    }
  }
}

void scores_f32_scalar(const float* q, int rows, int d, const float* k, int64_t stride, int64_t n, float scale,
                       float* scores, int64_t ld) {
  for (int64_t t = 0; t < n; ++t) {
    const float* kt = k + t * stride;
    for (int r = 0; r < rows; ++r) {
      const float* qr = q + static_cast<int64_t>(r) * d;
      float acc = 0.0f;
      for (int c = 0; c < d; ++c) acc += qr[c] * kt[c];
      scores[r * ld + t] = scale * acc;
    }
  }
}

void values_f32_scalar(const float* p, int64_t ld, int rows, int d, const float* v, int64_t stride, int64_t n,
                       float* out) {
  for (int64_t t = 0; t < n; ++t) {
    const float* vt = v + t * stride;
    for (int r = 0; r < rows; ++r) {
      const float w = p[r * ld + t];
      if (w == 0.0f) continue;
      float* o = out + static_cast<int64_t>(r) * d;
      for (int c = 0; c < d; ++c) o[c] += w * vt[c];
    }
  }
}

float exp_sum_scalar(float* x, int64_t n, float m) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  return static_cast<float>(sum);
}

void require(SimdLevel level) {
  if (!cpu_supports(level)) throw Error(std::string("kv attention: this CPU lacks ") + simd_level_name(level));
}

}  // namespace

void kv_scores_half_at(SimdLevel level, HalfKind kind, const float* q, int rows, int d, const uint16_t* k,
                       int64_t stride, int64_t n, float scale, float* scores, int64_t ld) {
  require(level);
  if (n <= 0) return;
  switch (level) {
    case SimdLevel::Avx512:
      return detail::kv_scores_half_avx512(kind, q, rows, d, k, stride, n, scale, scores, ld);
    case SimdLevel::Avx2:
      if (detail::kv_scores_half_avx2(kind, q, rows, d, k, stride, n, scale, scores, ld)) return;
      return scores_half_scalar(kind, q, rows, d, k, stride, n, scale, scores, ld);
    case SimdLevel::Scalar:
      return scores_half_scalar(kind, q, rows, d, k, stride, n, scale, scores, ld);
  }
}

void kv_values_half_at(SimdLevel level, HalfKind kind, const float* p, int64_t ld, int rows, int d, const uint16_t* v,
                       int64_t stride, int64_t n, float* out) {
  require(level);
  if (n <= 0) return;
  switch (level) {
    case SimdLevel::Avx512:
      return detail::kv_values_half_avx512(kind, p, ld, rows, d, v, stride, n, out);
    case SimdLevel::Avx2:
      if (detail::kv_values_half_avx2(kind, p, ld, rows, d, v, stride, n, out)) return;
      return values_half_scalar(kind, p, ld, rows, d, v, stride, n, out);
    case SimdLevel::Scalar:
      return values_half_scalar(kind, p, ld, rows, d, v, stride, n, out);
  }
}

float kv_exp_sum_at(SimdLevel level, float* x, int64_t n, float m) {
  require(level);
  if (n <= 0) return 0.0f;
  switch (level) {
    case SimdLevel::Avx512:
      return detail::kv_exp_sum_avx512(x, n, m);
    case SimdLevel::Avx2:
      return detail::kv_exp_sum_avx2(x, n, m);
    case SimdLevel::Scalar:
      return exp_sum_scalar(x, n, m);
  }
  return 0.0f;
}

void kv_scores_half(HalfKind kind, const float* q, int rows, int d, const uint16_t* k, int64_t stride, int64_t n,
                    float scale, float* scores, int64_t ld) {
  kv_scores_half_at(active_simd_level(), kind, q, rows, d, k, stride, n, scale, scores, ld);
}

void kv_values_half(HalfKind kind, const float* p, int64_t ld, int rows, int d, const uint16_t* v, int64_t stride,
                    int64_t n, float* out) {
  kv_values_half_at(active_simd_level(), kind, p, ld, rows, d, v, stride, n, out);
}

void kv_scores_f32(const float* q, int rows, int d, const float* k, int64_t stride, int64_t n, float scale,
                   float* scores, int64_t ld) {
  if (n <= 0) return;
  if (active_simd_level() == SimdLevel::Avx512) {
    detail::kv_scores_f32_avx512(q, rows, d, k, stride, n, scale, scores, ld);
  } else {
    scores_f32_scalar(q, rows, d, k, stride, n, scale, scores, ld);
  }
}

void kv_values_f32(const float* p, int64_t ld, int rows, int d, const float* v, int64_t stride, int64_t n, float* out) {
  if (n <= 0) return;
  if (active_simd_level() == SimdLevel::Avx512) {
    detail::kv_values_f32_avx512(p, ld, rows, d, v, stride, n, out);
  } else {
    values_f32_scalar(p, ld, rows, d, v, stride, n, out);
  }
}

void kv_scores_gemm(const float* q, int rows, int d, const float* k, int64_t stride, int64_t n, float scale,
                    float* scores, int64_t ld) {
  if (n <= 0 || rows <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, static_cast<int>(n), d, scale, q, d, k,
              static_cast<int>(stride), 0.0f, scores, static_cast<int>(ld));
}

void kv_values_gemm(const float* p, int64_t ld, int rows, int d, const float* v, int64_t stride, int64_t n,
                    float* out) {
  if (n <= 0 || rows <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, static_cast<int>(n), 1.0f, p, static_cast<int>(ld), v,
              static_cast<int>(stride), 1.0f, out, d);
}

float kv_max(const float* x, int64_t n) {
  if (active_simd_level() == SimdLevel::Avx512) return detail::kv_max_avx512(x, n);
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float kv_exp_sum(float* x, int64_t n, float m) { return kv_exp_sum_at(active_simd_level(), x, n, m); }

}  // namespace cvq
