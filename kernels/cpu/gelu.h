#pragma once
// GELU (erf form, as torch.nn.GELU()) over an array, for the CommVQ value encoder's hidden layer.
// erf is the Abramowitz–Stegun 7.1.26 approximation (|error| <= 1.5e-7), vectorized with AVX-512
// where available: the result is within 1e-7·|x| + 3e-7·|gelu(x)| + 1e-7 of 0.5·x·(1 + erf(x/√2)) (tested).
#include <cstdint>

namespace cvq {

void gelu_inplace(float* x, int64_t n);

namespace detail {
void gelu_inplace_avx512(float* x, int64_t n);
}  // namespace detail

}  // namespace cvq
