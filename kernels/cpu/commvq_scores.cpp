#include "kernels/cpu/commvq_scores.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"

namespace cvq {
namespace {

constexpr int kSub = 64;

void check_shape(const char* what, int stages, int head_dim, int n_query) {
  if (stages <= 0 || head_dim <= 0 || head_dim % 2 != 0 || n_query <= 0) {
    throw Error(std::string(what) + ": bad shape (stages " + std::to_string(stages) + ", head dim " +
                std::to_string(head_dim) + ", query heads " + std::to_string(n_query) + ")");
  }
}

bool use_avx512(SimdLevel level) {
  if (!cpu_supports(level))
    throw Error(std::string("commvq scores: this CPU does not support ") + simd_level_name(level));
  return level == SimdLevel::Avx512 && detail::commvq_scores_avx512_compiled();
}

void scores_codes_scalar(const float* table, int stages, int d, int n_query, const uint16_t* codes, int64_t code_stride,
                         const float* norms, const float* cos_sin, int64_t n, float* scores, int64_t score_stride) {
  const int h = d / 2;
  std::vector<float> acc(static_cast<size_t>(d));
  const size_t head_floats = static_cast<size_t>(stages) * kSub * d;
  for (int g = 0; g < n_query; ++g) {
    const float* tg = table + g * head_floats;
    for (int64_t t = 0; t < n; ++t) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      const uint16_t* ct = codes + t * code_stride;
      for (int j = 0; j < stages; ++j) {
        const int c = ct[j] & 4095;
        const float* ra = tg + (static_cast<size_t>(j) * kSub + (c >> 6)) * d;
        const float* rb = tg + (static_cast<size_t>(j) * kSub + (c & 63)) * d;
        for (int f = 0; f < h; ++f) {
          acc[f] += ra[f] + rb[h + f];      // P: U.x[A] + U.y[B]
          acc[h + f] += ra[h + f] - rb[f];  // Q: U.y[A] − U.x[B]
        }
      }
      const float* cs = cos_sin + t * d;
      float s = 0.0f;
      for (int i = 0; i < d; ++i) s += acc[i] * cs[i];
      scores[g * score_stride + t] = norms[t] * s;
    }
  }
}

void scores_decode_scalar(const float* xy, int stages, int d, const float* q_pairs, int n_query, const uint16_t* codes,
                          int64_t code_stride, const float* norms, const float* cos_sin, int64_t n, float* scores,
                          int64_t score_stride) {
  const int h = d / 2;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> k(static_cast<size_t>(d)), r(static_cast<size_t>(d));
  for (int64_t t = 0; t < n; ++t) {
    std::fill(k.begin(), k.end(), 0.0f);
    const uint16_t* ct = codes + t * code_stride;
    for (int j = 0; j < stages; ++j) {
      const int c = ct[j] & 4095;
      const float* x = xy + static_cast<size_t>(j) * 2 * kSub * h;
      const float* y = x + kSub * h;
      const float *xa = x + (c >> 6) * h, *ya = y + (c >> 6) * h, *xb = x + (c & 63) * h, *yb = y + (c & 63) * h;
      for (int f = 0; f < h; ++f) {
        k[f] += xa[f] - yb[f];
        k[h + f] += ya[f] + xb[f];
      }
    }
    const float* cs = cos_sin + t * d;
    for (int f = 0; f < h; ++f) {
      r[f] = k[f] * cs[f] - k[h + f] * cs[h + f];
      r[h + f] = k[f] * cs[h + f] + k[h + f] * cs[f];
    }
    for (int g = 0; g < n_query; ++g) {
      const float* q = q_pairs + static_cast<size_t>(g) * d;
      float s = 0.0f;
      for (int i = 0; i < d; ++i) s += q[i] * r[i];
      scores[g * score_stride + t] = norms[t] * scale * s;
    }
  }
}

}  // namespace

size_t commvq_query_table_floats(int stages, int head_dim, int n_query) {
  return static_cast<size_t>(n_query) * stages * kSub * head_dim;
}

void commvq_query_table(const float* xy, int stages, int d, const float* q_pairs, int n_query, float* table) {
  check_shape("commvq_query_table", stages, d, n_query);
  const int h = d / 2;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int g = 0; g < n_query; ++g) {
    const float* a = q_pairs + static_cast<size_t>(g) * d;
    const float* b = a + h;
    for (int j = 0; j < stages; ++j) {
      const float* x = xy + static_cast<size_t>(j) * 2 * kSub * h;
      const float* y = x + kSub * h;
      float* tj = table + (static_cast<size_t>(g) * stages + j) * kSub * d;
      for (int s = 0; s < kSub; ++s) {
        float* row = tj + static_cast<size_t>(s) * d;
        const float* xs = x + s * h;
        const float* ys = y + s * h;
        for (int f = 0; f < h; ++f) {
          // U = q̃_fᵀ M(X, Y) = (aX + bY, −aY + bX).
          row[f] = (a[f] * xs[f] + b[f] * ys[f]) * scale;
          row[h + f] = (b[f] * xs[f] - a[f] * ys[f]) * scale;
        }
      }
    }
  }
}

void commvq_scores_codes_at(SimdLevel level, const float* table, int stages, int d, int n_query, const uint16_t* codes,
                            int64_t code_stride, const float* norms, const float* cos_sin, int64_t n, float* scores,
                            int64_t score_stride) {
  check_shape("commvq_scores_codes", stages, d, n_query);
  if (n <= 0) return;
  if (use_avx512(level) && detail::commvq_scores_codes_avx512(table, stages, d, n_query, codes, code_stride, norms,
                                                              cos_sin, n, scores, score_stride)) {
    return;
  }
  scores_codes_scalar(table, stages, d, n_query, codes, code_stride, norms, cos_sin, n, scores, score_stride);
}

void commvq_scores_codes(const float* table, int stages, int d, int n_query, const uint16_t* codes, int64_t code_stride,
                         const float* norms, const float* cos_sin, int64_t n, float* scores, int64_t score_stride) {
  commvq_scores_codes_at(active_simd_level(), table, stages, d, n_query, codes, code_stride, norms, cos_sin, n, scores,
                         score_stride);
}

void commvq_scores_decode_at(SimdLevel level, const float* xy, int stages, int d, const float* q_pairs, int n_query,
                             const uint16_t* codes, int64_t code_stride, const float* norms, const float* cos_sin,
                             int64_t n, float* scores, int64_t score_stride) {
  check_shape("commvq_scores_decode", stages, d, n_query);
  if (n <= 0) return;
  if (use_avx512(level) && detail::commvq_scores_decode_avx512(xy, stages, d, q_pairs, n_query, codes, code_stride,
                                                               norms, cos_sin, n, scores, score_stride)) {
    return;
  }
  scores_decode_scalar(xy, stages, d, q_pairs, n_query, codes, code_stride, norms, cos_sin, n, scores, score_stride);
}

void commvq_scores_decode(const float* xy, int stages, int d, const float* q_pairs, int n_query, const uint16_t* codes,
                          int64_t code_stride, const float* norms, const float* cos_sin, int64_t n, float* scores,
                          int64_t score_stride) {
  commvq_scores_decode_at(active_simd_level(), xy, stages, d, q_pairs, n_query, codes, code_stride, norms, cos_sin, n,
                          scores, score_stride);
}

void commvq_block_cos_sin(const float* base, const float* offsets, int64_t n, int d, float* out) {
  static const bool avx512 = use_avx512(active_simd_level());
  if (avx512 && detail::commvq_block_cos_sin_avx512(base, offsets, n, d, out)) return;
  const int h = d / 2;
  for (int64_t t = 0; t < n; ++t) {
    const float* ct = offsets + t * d;
    float* o = out + t * d;
    for (int f = 0; f < h; ++f) {
      o[f] = base[f] * ct[f] - base[h + f] * ct[h + f];
      o[h + f] = base[h + f] * ct[f] + base[f] * ct[h + f];
    }
  }
}

void commvq_scores_reference(const float* xy, int stages, int d, const float* q_pairs, int n_query,
                             const uint16_t* codes, int64_t code_stride, const float* norms, const float* cos_sin,
                             int64_t n, float* scores, int64_t score_stride) {
  check_shape("commvq_scores_reference", stages, d, n_query);
  const int h = d / 2;
  std::vector<double> k(static_cast<size_t>(d));
  for (int64_t t = 0; t < n; ++t) {
    std::fill(k.begin(), k.end(), 0.0);
    for (int j = 0; j < stages; ++j) {
      const int c = codes[t * code_stride + j] & 4095;
      const float* x = xy + static_cast<size_t>(j) * 2 * kSub * h;
      const float* y = x + kSub * h;
      for (int f = 0; f < h; ++f) {
        k[f] += static_cast<double>(x[(c >> 6) * h + f]) - y[(c & 63) * h + f];
        k[h + f] += static_cast<double>(y[(c >> 6) * h + f]) + x[(c & 63) * h + f];
      }
    }
    const float* cs = cos_sin + t * d;
    for (int g = 0; g < n_query; ++g) {
      const float* q = q_pairs + static_cast<size_t>(g) * d;
      double s = 0.0;
      for (int f = 0; f < h; ++f) {
        const double rx = k[f] * cs[f] - k[h + f] * cs[h + f];
        const double ry = k[f] * cs[h + f] + k[h + f] * cs[f];
        s += q[f] * rx + q[h + f] * ry;
      }
      scores[g * score_stride + t] = static_cast<float>(norms[t] * s / std::sqrt(static_cast<double>(d)));
    }
  }
}

}  // namespace cvq
