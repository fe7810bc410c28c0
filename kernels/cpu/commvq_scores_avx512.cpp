// AVX-512 versions of the CommVQ score kernels (see commvq_scores.h), for head dims 64 and 128.
// Compiled with -mavx512* by CMake; only called after cpu_supports(SimdLevel::Avx512).
#include "kernels/cpu/commvq_scores.h"

#if defined(__x86_64__) && defined(__AVX512F__)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <cmath>

namespace cvq::detail {
namespace {

constexpr int kSub = 64;

// NV = d/16 vectors per d-long row; the first NV/2 hold U.x (→ P), the rest U.y (→ Q).
template <int NV>
void scores_codes(const float* table, int stages, int n_query, const uint16_t* codes, int64_t code_stride,
                  const float* norms, const float* cos_sin, int64_t n, float* scores, int64_t score_stride) {
  constexpr int d = NV * 16;
  constexpr int h = d / 2;
  constexpr int NH = NV / 2;
  const size_t head_floats = static_cast<size_t>(stages) * kSub * d;
  for (int g = 0; g < n_query; ++g) {
    const float* tg = table + g * head_floats;
    for (int64_t t = 0; t < n; ++t) {
      __m512 p[NH], q[NH];
      for (int v = 0; v < NH; ++v) p[v] = q[v] = _mm512_setzero_ps();
      const uint16_t* ct = codes + t * code_stride;
      const float* tj = tg;
      for (int j = 0; j < stages; ++j, tj += kSub * d) {
        const int c = ct[j] & 4095;
        const float* ra = tj + (c >> 6) * d;
        const float* rb = tj + (c & 63) * d;
        for (int v = 0; v < NH; ++v) {
          p[v] = _mm512_add_ps(p[v], _mm512_add_ps(_mm512_loadu_ps(ra + 16 * v), _mm512_loadu_ps(rb + h + 16 * v)));
          q[v] = _mm512_add_ps(q[v], _mm512_sub_ps(_mm512_loadu_ps(ra + h + 16 * v), _mm512_loadu_ps(rb + 16 * v)));
        }
      }
      const float* cs = cos_sin + t * d;
      __m512 s = _mm512_mul_ps(p[0], _mm512_loadu_ps(cs));
      for (int v = 1; v < NH; ++v) s = _mm512_fmadd_ps(p[v], _mm512_loadu_ps(cs + 16 * v), s);
      for (int v = 0; v < NH; ++v) s = _mm512_fmadd_ps(q[v], _mm512_loadu_ps(cs + h + 16 * v), s);
      scores[g * score_stride + t] = norms[t] * _mm512_reduce_add_ps(s);
    }
  }
}

template <int NV>
void scores_decode(const float* xy, int stages, const float* q_pairs, int n_query, const uint16_t* codes,
                   int64_t code_stride, const float* norms, const float* cos_sin, int64_t n, float* scores,
                   int64_t score_stride) {
  constexpr int d = NV * 16;
  constexpr int h = d / 2;
  constexpr int NH = NV / 2;  // vectors per half
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int64_t t = 0; t < n; ++t) {
    __m512 kx[NH], ky[NH];
    for (int v = 0; v < NH; ++v) kx[v] = ky[v] = _mm512_setzero_ps();
    const uint16_t* ct = codes + t * code_stride;
    const float* x = xy;
    for (int j = 0; j < stages; ++j, x += 2 * kSub * h) {
      const int c = ct[j] & 4095;
      const float* xa = x + (c >> 6) * h;
      const float* xb = x + (c & 63) * h;
      const float* ya = xa + kSub * h;
      const float* yb = xb + kSub * h;
      for (int v = 0; v < NH; ++v) {
        kx[v] = _mm512_add_ps(kx[v], _mm512_sub_ps(_mm512_loadu_ps(xa + 16 * v), _mm512_loadu_ps(yb + 16 * v)));
        ky[v] = _mm512_add_ps(ky[v], _mm512_add_ps(_mm512_loadu_ps(ya + 16 * v), _mm512_loadu_ps(xb + 16 * v)));
      }
    }
    const float* cs = cos_sin + t * d;
    __m512 rx[NH], ry[NH];
    for (int v = 0; v < NH; ++v) {
      const __m512 c = _mm512_loadu_ps(cs + 16 * v), s = _mm512_loadu_ps(cs + h + 16 * v);
      rx[v] = _mm512_fmsub_ps(kx[v], c, _mm512_mul_ps(ky[v], s));
      ry[v] = _mm512_fmadd_ps(kx[v], s, _mm512_mul_ps(ky[v], c));
    }
    const float nt = norms[t] * scale;
    for (int g = 0; g < n_query; ++g) {
      const float* q = q_pairs + static_cast<size_t>(g) * d;
      __m512 s = _mm512_mul_ps(_mm512_loadu_ps(q), rx[0]);
      for (int v = 1; v < NH; ++v) s = _mm512_fmadd_ps(_mm512_loadu_ps(q + 16 * v), rx[v], s);
      for (int v = 0; v < NH; ++v) s = _mm512_fmadd_ps(_mm512_loadu_ps(q + h + 16 * v), ry[v], s);
      scores[g * score_stride + t] = nt * _mm512_reduce_add_ps(s);
    }
  }
}

}  // namespace

bool commvq_scores_avx512_compiled() { return true; }

bool commvq_block_cos_sin_avx512(const float* base, const float* offsets, int64_t n, int d, float* out) {
  const int h = d / 2;
  if (h % 16 != 0) return false;
  for (int64_t t = 0; t < n; ++t) {
    const float* ct = offsets + t * d;
    float* o = out + t * d;
    for (int f = 0; f < h; f += 16) {
      const __m512 c0 = _mm512_loadu_ps(base + f), s0 = _mm512_loadu_ps(base + h + f);
      const __m512 c = _mm512_loadu_ps(ct + f), s = _mm512_loadu_ps(ct + h + f);
      _mm512_storeu_ps(o + f, _mm512_fmsub_ps(c0, c, _mm512_mul_ps(s0, s)));
      _mm512_storeu_ps(o + h + f, _mm512_fmadd_ps(s0, c, _mm512_mul_ps(c0, s)));
    }
  }
  return true;
}

bool commvq_scores_codes_avx512(const float* table, int stages, int head_dim, int n_query, const uint16_t* codes,
                                int64_t code_stride, const float* norms, const float* cos_sin, int64_t n, float* scores,
                                int64_t score_stride) {
  switch (head_dim) {
    case 64:
      scores_codes<4>(table, stages, n_query, codes, code_stride, norms, cos_sin, n, scores, score_stride);
      return true;
    case 128:
      scores_codes<8>(table, stages, n_query, codes, code_stride, norms, cos_sin, n, scores, score_stride);
      return true;
    default:
      return false;
  }
}

bool commvq_scores_decode_avx512(const float* xy, int stages, int head_dim, const float* q_pairs, int n_query,
                                 const uint16_t* codes, int64_t code_stride, const float* norms, const float* cos_sin,
                                 int64_t n, float* scores, int64_t score_stride) {
  switch (head_dim) {
    case 64:
      scores_decode<4>(xy, stages, q_pairs, n_query, codes, code_stride, norms, cos_sin, n, scores, score_stride);
      return true;
    case 128:
      scores_decode<8>(xy, stages, q_pairs, n_query, codes, code_stride, norms, cos_sin, n, scores, score_stride);
      return true;
    default:
      return false;
  }
}

}  // namespace cvq::detail

#else

namespace cvq::detail {
bool commvq_scores_avx512_compiled() { return false; }
bool commvq_scores_codes_avx512(const float*, int, int, int, const uint16_t*, int64_t, const float*, const float*,
                                int64_t, float*, int64_t) {
  return false;
}
bool commvq_scores_decode_avx512(const float*, int, int, const float*, int, const uint16_t*, int64_t, const float*,
                                 const float*, int64_t, float*, int64_t) {
  return false;
}
bool commvq_block_cos_sin_avx512(const float*, const float*, int64_t, int, float*) { return false; }
}  // namespace cvq::detail

#endif
