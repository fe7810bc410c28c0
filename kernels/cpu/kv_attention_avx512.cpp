// AVX-512 variants of kv_attention.h (compiled with -mavx512f/bw/vl/dq, chosen at run time).
#include "kernels/cpu/attend_tiles_avx512.h"
#include "kernels/cpu/simd_avx512.h"  // first: it silences GCC 12 intrinsic false positives

#include <algorithm>

#include "kernels/cpu/kv_attention.h"

namespace cvq::detail {
namespace {

template <HalfKind K>
struct HalfLoader {
  const uint16_t* base;
  int64_t stride;
  int d;
  __m512 operator()(int64_t t, int c, __mmask16 m) const {
    const __m256i h = _mm256_maskz_loadu_epi16(m, base + t * stride + c * 16);
    if constexpr (K == HalfKind::F16) {
      return _mm512_cvtph_ps(h);
    } else {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
  void prefetch(int64_t t) const { prefetch_bytes(base + t * stride, 2 * d); }
};

struct F32Loader {
  const float* base;
  int64_t stride;
  int d;
  __m512 operator()(int64_t t, int c, __mmask16 m) const {
    return _mm512_maskz_loadu_ps(m, base + t * stride + c * 16);
  }
  void prefetch(int64_t t) const { prefetch_bytes(base + t * stride, 4 * d); }
};

}  // namespace

void kv_scores_half_avx512(HalfKind kind, const float* q, int rows, int d, const uint16_t* k, int64_t stride, int64_t n,
                           float scale, float* scores, int64_t ld) {
  if (kind == HalfKind::F16) {
    scores_tiles(q, rows, d, n, scale, scores, ld, HalfLoader<HalfKind::F16>{k, stride, d});
  } else {
    scores_tiles(q, rows, d, n, scale, scores, ld, HalfLoader<HalfKind::BF16>{k, stride, d});
  }
}

void kv_values_half_avx512(HalfKind kind, const float* p, int64_t ld, int rows, int d, const uint16_t* v,
                           int64_t stride, int64_t n, float* out) {
  if (kind == HalfKind::F16) {
    values_tiles(p, ld, rows, d, n, out, HalfLoader<HalfKind::F16>{v, stride, d});
  } else {
    values_tiles(p, ld, rows, d, n, out, HalfLoader<HalfKind::BF16>{v, stride, d});
  }
}

void kv_scores_f32_avx512(const float* q, int rows, int d, const float* k, int64_t stride, int64_t n, float scale,
                          float* scores, int64_t ld) {
  scores_tiles(q, rows, d, n, scale, scores, ld, F32Loader{k, stride, d});
}

void kv_values_f32_avx512(const float* p, int64_t ld, int rows, int d, const float* v, int64_t stride, int64_t n,
                          float* out) {
  values_tiles(p, ld, rows, d, n, out, F32Loader{v, stride, d});
}

float kv_max_avx512(const float* x, int64_t n) {
  __m512 m0 = _mm512_set1_ps(x[0]), m1 = m0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16) {
    const __mmask16 mk = static_cast<__mmask16>(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1);
    m0 = _mm512_mask_max_ps(m0, mk, m0, _mm512_maskz_loadu_ps(mk, x + i));
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

float kv_exp_sum_avx512(float* x, int64_t n, float m) {
  const __m512 vm = _mm512_set1_ps(m);
  double total = 0.0;
  int64_t i = 0;
  while (i < n) {
    const int64_t end = std::min(n, i + 1024);  // float partial sums over short runs, then double
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (; i + 32 <= end; i += 32) {
      const __m512 e0 = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
      const __m512 e1 = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vm));
      _mm512_storeu_ps(x + i, e0);
      _mm512_storeu_ps(x + i + 16, e1);
      s0 = _mm512_add_ps(s0, e0);
      s1 = _mm512_add_ps(s1, e1);
    }
    for (; i < end; i += 16) {
      const __mmask16 mk = static_cast<__mmask16>(end - i >= 16 ? 0xFFFF : (1u << (end - i)) - 1);
      const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), vm));
      _mm512_mask_storeu_ps(x + i, mk, e);
      s0 = _mm512_add_ps(s0, _mm512_maskz_mov_ps(mk, e));
    }
    total += static_cast<double>(_mm512_reduce_add_ps(_mm512_add_ps(s0, s1)));
  }
  return static_cast<float>(total);
}

}  // namespace cvq::detail
