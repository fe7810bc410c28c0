#include "kernels/cpu/gelu.h"

#include <cmath>

#include "kernels/cpu/cpu_features.h"

namespace cvq {
namespace {

// erf(z), z >= 0, Abramowitz & Stegun 7.1.26.
float erf_as(float z) {
  const float t = 1.0f / (1.0f + 0.3275911f * z);
  const float poly =
      t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  return 1.0f - poly * std::exp(-z * z);
}

}  // namespace

void gelu_inplace(float* x, int64_t n) {
  if (active_simd_level() == SimdLevel::Avx512) return detail::gelu_inplace_avx512(x, n);
  for (int64_t i = 0; i < n; ++i) {
    const float z = x[i] * 0.70710678118654752f;
    const float e = erf_as(std::fabs(z));
    x[i] = 0.5f * x[i] * (1.0f + (z < 0 ? -e : e));
  }
}

}  // namespace cvq
