// AVX-512 accumulation of attention-weighted value codes (see commvq_values.h): each 16 code bits
// are a mask for one masked add of the token's weight into 16 accumulator lanes, 128 bits held in
// registers across the tokens of the block. Compiled with -mavx512* by CMake; only called after
// cpu_supports(SimdLevel::Avx512).
#include "kernels/cpu/commvq_values.h"

#if defined(__x86_64__) && defined(__AVX512F__)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace cvq::detail {
namespace {

constexpr int kTokChunk = 256;

// NV vectors of 16 lanes = code bits [j0, j0 + 16·NV) of one row, over tokens [0, n).
template <int NV>
void accumulate_span(const uint8_t* codes, int64_t code_stride, const float* pf, int64_t n, const float* wr, int j0,
                     float* ar) {
  __m512 acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = _mm512_loadu_ps(ar + j0 + 16 * v);
  const uint8_t* base = codes + j0 / 8;
  for (int64_t t = 0; t < n; ++t) {
    const float c = wr[t] * pf[t];
    if (c == 0.0f) continue;
    const __m512 bc = _mm512_set1_ps(c);
    const uint8_t* ct = base + t * code_stride;
    for (int v = 0; v < NV; ++v) {
      uint16_t m;
      std::memcpy(&m, ct + 2 * v, 2);
      acc[v] = _mm512_mask_add_ps(acc[v], static_cast<__mmask16>(m), acc[v], bc);
    }
  }
  for (int v = 0; v < NV; ++v) _mm512_storeu_ps(ar + j0 + 16 * v, acc[v]);
}

}  // namespace

bool commvq_values_avx512_compiled() { return true; }

bool commvq_values_accumulate_avx512(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16,
                                     int64_t n_tokens, int code_bits, const float* weights, int64_t w_stride, int rows,
                                     float* acc) {
  if (code_bits % 16 != 0) return false;
  alignas(64) float pf[kTokChunk];
  for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokChunk) {
    const int64_t n = std::min<int64_t>(kTokChunk, n_tokens - t0);
    int64_t t = 0;
    for (; t + 16 <= n; t += 16) {
      _mm512_store_ps(pf + t, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p_fp16 + t0 + t))));
    }
    for (; t < n; ++t) {
      _mm_store_ss(pf + t, _mm_cvtph_ps(_mm_cvtsi32_si128(p_fp16[t0 + t])));
    }
    const uint8_t* ct = codes + t0 * code_stride;
    for (int r = 0; r < rows; ++r) {
      const float* wr = weights + r * w_stride + t0;
      float* ar = acc + static_cast<int64_t>(r) * code_bits;
      int j = 0;
      for (; j + 128 <= code_bits; j += 128) accumulate_span<8>(ct, code_stride, pf, n, wr, j, ar);
      switch ((code_bits - j) / 16) {
        case 1:
          accumulate_span<1>(ct, code_stride, pf, n, wr, j, ar);
          break;
        case 2:
          accumulate_span<2>(ct, code_stride, pf, n, wr, j, ar);
          break;
        case 3:
          accumulate_span<3>(ct, code_stride, pf, n, wr, j, ar);
          break;
        case 4:
          accumulate_span<4>(ct, code_stride, pf, n, wr, j, ar);
          break;
        case 5:
          accumulate_span<5>(ct, code_stride, pf, n, wr, j, ar);
          break;
        case 6:
          accumulate_span<6>(ct, code_stride, pf, n, wr, j, ar);
          break;
        case 7:
          accumulate_span<7>(ct, code_stride, pf, n, wr, j, ar);
          break;
        default:
          break;
      }
    }
  }
  return true;
}

}  // namespace cvq::detail

#else

namespace cvq::detail {
bool commvq_values_avx512_compiled() { return false; }
bool commvq_values_accumulate_avx512(const uint8_t*, int64_t, const uint16_t*, int64_t, int, const float*, int64_t, int,
                                     float*) {
  return false;
}
}  // namespace cvq::detail

#endif
