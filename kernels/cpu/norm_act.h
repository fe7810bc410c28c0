#pragma once
// Row-wise RMSNorm and the SwiGLU gate, the two elementwise ops of a llama block.
#include <cstdint>

namespace cvq {

// y[t] = x[t] / rms(x[t]) * weight, for n rows of dim floats (y may alias x).
void rmsnorm_rows(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* y);
// gate[i] = silu(gate[i]) * up[i]
void swiglu_inplace(float* gate, const float* up, int64_t count);

}  // namespace cvq
