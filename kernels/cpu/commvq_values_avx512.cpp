// AVX-512 accumulation of attention-weighted value codes (see commvq_values.h): each 16 code bits
// are a mask for one masked add of the token's weight into 16 accumulator lanes; up to 4 rows × 96
// bits are held in registers across the tokens of the block, each token's masks loaded once. Compiled with -mavx512* by
// CMake; only called after cpu_supports(SimdLevel::Avx512).
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
constexpr int kMaxRows = 4;  // rows per pass: NR·NV accumulators + NR broadcasts stay in the 32 registers
constexpr int kMaxVecs = 6;  // 16-bit masks per token held in mask registers

// NR rows × NV vectors of 16 lanes = code bits [j0, j0 + 16·NV), over tokens [0, n): each token's NV
// masks are loaded once and applied to every row (a masked add of the row's weight·p_t).
template <int NR, int NV>
void accumulate_rows(const uint8_t* codes, int64_t code_stride, const float* pf, int64_t n, const float* w,
                     int64_t w_stride, int j0, float* acc, int code_bits) {
  __m512 a[NR][NV];
  for (int r = 0; r < NR; ++r)
    for (int v = 0; v < NV; ++v) a[r][v] = _mm512_loadu_ps(acc + static_cast<int64_t>(r) * code_bits + j0 + 16 * v);
  const uint8_t* base = codes + j0 / 8;
  for (int64_t t = 0; t < n; ++t) {
    float c[NR];
    bool any = false;
    for (int r = 0; r < NR; ++r) {
      c[r] = w[r * w_stride + t] * pf[t];
      any |= c[r] != 0.0f;
    }
    if (!any) continue;  // masked (causal) for every row
    const uint8_t* ct = base + t * code_stride;
    __mmask16 m[NV];
    for (int v = 0; v < NV; ++v) {
      uint16_t bits;
      std::memcpy(&bits, ct + 2 * v, 2);
      m[v] = static_cast<__mmask16>(bits);
    }
    for (int r = 0; r < NR; ++r) {
      const __m512 bc = _mm512_set1_ps(c[r]);
      for (int v = 0; v < NV; ++v) a[r][v] = _mm512_mask_add_ps(a[r][v], m[v], a[r][v], bc);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(acc + static_cast<int64_t>(r) * code_bits + j0 + 16 * v, a[r][v]);
}

template <int NR>
void accumulate_row_group(const uint8_t* codes, int64_t code_stride, const float* pf, int64_t n, const float* w,
                          int64_t w_stride, int code_bits, float* acc) {
  int j = 0;
  for (; j + 16 * kMaxVecs <= code_bits; j += 16 * kMaxVecs)
    accumulate_rows<NR, kMaxVecs>(codes, code_stride, pf, n, w, w_stride, j, acc, code_bits);
  switch ((code_bits - j) / 16) {
    case 1:
      accumulate_rows<NR, 1>(codes, code_stride, pf, n, w, w_stride, j, acc, code_bits);
      break;
    case 2:
      accumulate_rows<NR, 2>(codes, code_stride, pf, n, w, w_stride, j, acc, code_bits);
      break;
    case 3:
      accumulate_rows<NR, 3>(codes, code_stride, pf, n, w, w_stride, j, acc, code_bits);
      break;
    case 4:
      accumulate_rows<NR, 4>(codes, code_stride, pf, n, w, w_stride, j, acc, code_bits);
      break;
    case 5:
      accumulate_rows<NR, 5>(codes, code_stride, pf, n, w, w_stride, j, acc, code_bits);
      break;
    default:
      break;
  }
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
    for (int r = 0; r < rows; r += kMaxRows) {
      const float* wr = weights + r * w_stride + t0;
      float* ar = acc + static_cast<int64_t>(r) * code_bits;
      switch (std::min(kMaxRows, rows - r)) {
        case 4:
          accumulate_row_group<4>(ct, code_stride, pf, n, wr, w_stride, code_bits, ar);
          break;
        case 3:
          accumulate_row_group<3>(ct, code_stride, pf, n, wr, w_stride, code_bits, ar);
          break;
        case 2:
          accumulate_row_group<2>(ct, code_stride, pf, n, wr, w_stride, code_bits, ar);
          break;
        default:
          accumulate_row_group<1>(ct, code_stride, pf, n, wr, w_stride, code_bits, ar);
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
