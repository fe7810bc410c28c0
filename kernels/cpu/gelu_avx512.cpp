#include "kernels/cpu/gelu.h"
#include "kernels/cpu/simd_avx512.h"

namespace cvq::detail {

void gelu_inplace_avx512(float* x, int64_t n) {
  const __m512 inv_sqrt2 = _mm512_set1_ps(0.70710678118654752f), one = _mm512_set1_ps(1.0f),
               half = _mm512_set1_ps(0.5f);
  const __m512 p = _mm512_set1_ps(0.3275911f);
  const __m512 a1 = _mm512_set1_ps(0.254829592f), a2 = _mm512_set1_ps(-0.284496736f), a3 = _mm512_set1_ps(1.421413741f),
               a4 = _mm512_set1_ps(-1.453152027f), a5 = _mm512_set1_ps(1.061405429f);
  int64_t i = 0;
  auto one_vec = [&](__m512 v, __mmask16 m) {
    const __m512 z = _mm512_mul_ps(v, inv_sqrt2);
    const __m512 az = _mm512_abs_ps(z);
    const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(p, az, one));
    __m512 poly = _mm512_fmadd_ps(t, a5, a4);
    poly = _mm512_fmadd_ps(t, poly, a3);
    poly = _mm512_fmadd_ps(t, poly, a2);
    poly = _mm512_fmadd_ps(t, poly, a1);
    poly = _mm512_mul_ps(t, poly);
    const __m512 e = _mm512_fnmadd_ps(poly, exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az)), one);
    const __m512 erf =
        _mm512_mask_sub_ps(e, _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ), _mm512_setzero_ps(), e);
    (void)m;
    return _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, erf));
  };
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, one_vec(_mm512_loadu_ps(x + i), 0xffff));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(x + i, m, one_vec(_mm512_maskz_loadu_ps(m, x + i), m));
  }
}

}  // namespace cvq::detail
