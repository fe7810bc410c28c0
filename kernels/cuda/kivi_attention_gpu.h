#pragma once
// KIVI fused attention on the device (the CUDA side of kernels/cpu/kivi_attention.h): the same
// views (KiviKeyView / KiviValueView) with device pointers, dequantization folded into the score
// dot products and the value accumulation. Results agree with the CPU kernels to float rounding.
#include <cstdint>

#include "kernels/cpu/kivi_attention.h"

namespace cvq::cuda {

// scores[r*ld + (t - t0)] = scale * dot(q_r, k^_t), t in [t0, t1); q: rows × d (device).
void kivi_scores(const KiviKeyView& k, const float* q, int rows, float scale, int64_t t0, int64_t t1, float* scores,
                 int64_t ld);
// out[r*d + c] += sum_{t in [t0,t1)} p[r*ld + (t - t0)] * v^_t[c]
void kivi_values(const KiviValueView& v, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1, float* out);

}  // namespace cvq::cuda
