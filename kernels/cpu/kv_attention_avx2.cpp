// AVX2 variants of the fp16 / bf16 attention kernels and exp-sum (kv_attention.h). Head dims that
// are not a multiple of 8 use the scalar reference.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/kv_attention.h"

namespace cvq::detail {
namespace {

template <HalfKind K>
inline __m256 load8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (K == HalfKind::F16) {
    return _mm256_cvtph_ps(h);
  } else {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

inline float hsum(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

template <HalfKind K, int RB>
void scores_rows(const float* q, int d, const uint16_t* k, int64_t stride, int64_t n, float scale, float* scores,
                 int64_t ld) {
  const int nc = d / 8;
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) {
    __m256 acc[RB][4];
    for (int i = 0; i < RB; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm256_setzero_ps();
    for (int c = 0; c < nc; ++c) {
      const __m256 k0 = load8<K>(k + (t + 0) * stride + c * 8), k1 = load8<K>(k + (t + 1) * stride + c * 8);
      const __m256 k2 = load8<K>(k + (t + 2) * stride + c * 8), k3 = load8<K>(k + (t + 3) * stride + c * 8);
      for (int i = 0; i < RB; ++i) {
        const __m256 qv = _mm256_loadu_ps(q + static_cast<int64_t>(i) * d + c * 8);
        acc[i][0] = _mm256_fmadd_ps(qv, k0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(qv, k1, acc[i][1]);
        acc[i][2] = _mm256_fmadd_ps(qv, k2, acc[i][2]);
        acc[i][3] = _mm256_fmadd_ps(qv, k3, acc[i][3]);
      }
    }
    for (int i = 0; i < RB; ++i)
      _mm_storeu_ps(scores + i * ld + t,
                    _mm_mul_ps(hsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), _mm_set1_ps(scale)));
  }
  for (; t < n; ++t) {
    for (int i = 0; i < RB; ++i) {
      __m256 acc = _mm256_setzero_ps();
      for (int c = 0; c < nc; ++c)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + static_cast<int64_t>(i) * d + c * 8),
                              load8<K>(k + t * stride + c * 8), acc);
      scores[i * ld + t] = scale * hsum(acc);
    }
  }
}

// RB rows x 2 chunks of 8 channels (c0, c0+1) in registers over all tokens.
template <HalfKind K, int RB>
void values_rows(const float* p, int64_t ld, int d, const uint16_t* v, int64_t stride, int64_t n, float* out) {
  const int nc = d / 8;
  for (int c0 = 0; c0 < nc; c0 += 2) {
    const int cb = std::min(2, nc - c0);
    __m256 acc[RB][2];
    for (int i = 0; i < RB; ++i) {
      acc[i][0] = _mm256_loadu_ps(out + static_cast<int64_t>(i) * d + c0 * 8);
      acc[i][1] = cb == 2 ? _mm256_loadu_ps(out + static_cast<int64_t>(i) * d + c0 * 8 + 8) : _mm256_setzero_ps();
    }
    for (int64_t t = 0; t < n; ++t) {
      const __m256 v0 = load8<K>(v + t * stride + c0 * 8);
      const __m256 v1 = cb == 2 ? load8<K>(v + t * stride + c0 * 8 + 8) : _mm256_setzero_ps();
      for (int i = 0; i < RB; ++i) {
        const __m256 w = _mm256_set1_ps(p[i * ld + t]);
        acc[i][0] = _mm256_fmadd_ps(w, v0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(w, v1, acc[i][1]);
      }
    }
    for (int i = 0; i < RB; ++i) {
      _mm256_storeu_ps(out + static_cast<int64_t>(i) * d + c0 * 8, acc[i][0]);
      if (cb == 2) _mm256_storeu_ps(out + static_cast<int64_t>(i) * d + c0 * 8 + 8, acc[i][1]);
    }
  }
}

template <HalfKind K>
void scores_all(const float* q, int rows, int d, const uint16_t* k, int64_t stride, int64_t n, float scale,
                float* scores, int64_t ld) {
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const float* qb = q + static_cast<int64_t>(r0) * d;
    float* sb = scores + r0 * ld;
    switch (std::min(4, rows - r0)) {
      case 4:
        scores_rows<K, 4>(qb, d, k, stride, n, scale, sb, ld);
        break;
      case 3:
        scores_rows<K, 3>(qb, d, k, stride, n, scale, sb, ld);
        break;
      case 2:
        scores_rows<K, 2>(qb, d, k, stride, n, scale, sb, ld);
        break;
      default:
        scores_rows<K, 1>(qb, d, k, stride, n, scale, sb, ld);
        break;
    }
  }
}

template <HalfKind K>
void values_all(const float* p, int64_t ld, int rows, int d, const uint16_t* v, int64_t stride, int64_t n, float* out) {
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const float* pb = p + r0 * ld;
    float* ob = out + static_cast<int64_t>(r0) * d;
    switch (std::min(4, rows - r0)) {
      case 4:
        values_rows<K, 4>(pb, ld, d, v, stride, n, ob);
        break;
      case 3:
        values_rows<K, 3>(pb, ld, d, v, stride, n, ob);
        break;
      case 2:
        values_rows<K, 2>(pb, ld, d, v, stride, n, ob);
        break;
      default:
        values_rows<K, 1>(pb, ld, d, v, stride, n, ob);
        break;
    }
  }
}

// exp(x) for x <= 0 (Cephes polynomial; inputs below -87 give 0).
inline __m256 exp256(__m256 x) {
  const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

}  // namespace

bool kv_scores_half_avx2(HalfKind kind, const float* q, int rows, int d, const uint16_t* k, int64_t stride, int64_t n,
                         float scale, float* scores, int64_t ld) {
  if (d % 8 != 0) return false;
  if (kind == HalfKind::F16) {
    scores_all<HalfKind::F16>(q, rows, d, k, stride, n, scale, scores, ld);
  } else {
    scores_all<HalfKind::BF16>(q, rows, d, k, stride, n, scale, scores, ld);
  }
  return true;
}

bool kv_values_half_avx2(HalfKind kind, const float* p, int64_t ld, int rows, int d, const uint16_t* v, int64_t stride,
                         int64_t n, float* out) {
  if (d % 8 != 0) return false;
  if (kind == HalfKind::F16) {
    values_all<HalfKind::F16>(p, ld, rows, d, v, stride, n, out);
  } else {
    values_all<HalfKind::BF16>(p, ld, rows, d, v, stride, n, out);
  }
  return true;
}

float kv_exp_sum_avx2(float* x, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  double total = 0.0;
  int64_t i = 0;
  while (i + 8 <= n) {
    const int64_t end = std::min(n, i + 1024) & ~int64_t{7};
    __m256 s = _mm256_setzero_ps();
    for (; i < end; i += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
      _mm256_storeu_ps(x + i, e);
      s = _mm256_add_ps(s, e);
    }
    total += static_cast<double>(hsum(s));
  }
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    total += x[i];
  }
  return static_cast<float>(total);
}

}  // namespace cvq::detail
