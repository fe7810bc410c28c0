#include "kv/minmax_quant.h"

#include <algorithm>
#include <cmath>

#include "core/fp16.h"

namespace cvq {

void minmax_quantize_pack(const float* x, int64_t stride, int n, int bits, uint32_t* words, uint16_t* scale_fp16,
                          uint16_t* zero_fp16) {
  float mn = x[0], mx = x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i * stride]);
    mx = std::max(mx, x[i * stride]);
  }
  const int levels = (1 << bits) - 1;
  const uint16_t zh = float_to_fp16(mn);
  uint16_t sh = float_to_fp16(std::min((mx - mn) / static_cast<float>(levels), 65504.0f));
  const float z = fp16_to_float(zh), s = fp16_to_float(sh);
  if (!(s > 0.0f)) sh = 0;  // constant group (or a range below fp16 resolution): every code 0
  *scale_fp16 = sh;
  *zero_fp16 = zh;
  const int nw = packed_words(n, bits), per = 32 / bits;
  std::fill(words, words + nw, 0u);
  if (sh == 0) return;
  const float inv = 1.0f / s;
  for (int i = 0; i < n; ++i) {
    const float u = std::clamp((x[i * stride] - z) * inv, 0.0f, static_cast<float>(levels));
    const uint32_t q = static_cast<uint32_t>(std::nearbyint(u));
    words[i / per] |= q << (bits * (i % per));
  }
}

void minmax_dequantize(const uint32_t* words, int n, int bits, uint16_t scale_fp16, uint16_t zero_fp16, float* x,
                       int64_t stride) {
  const float s = fp16_to_float(scale_fp16), z = fp16_to_float(zero_fp16);
  const int per = 32 / bits;
  const uint32_t mask = (1u << bits) - 1u;
  for (int i0 = 0, w = 0; i0 < n; i0 += per, ++w) {
    const uint32_t word = words[w];
    const int m = std::min(per, n - i0);
    for (int k = 0; k < m; ++k) x[(i0 + k) * stride] = static_cast<float>((word >> (bits * k)) & mask) * s + z;
  }
}

}  // namespace cvq
