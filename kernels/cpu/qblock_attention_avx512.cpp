// AVX-512 q8_0 / q4_0 attention: each 16-element chunk is dequantized in registers (codes * d).
#include "kernels/cpu/attend_tiles_avx512.h"
#include "kernels/cpu/simd_avx512.h"  // first: it silences GCC 12 intrinsic false positives

#include <cstring>

#include "kernels/cpu/qblock_attention.h"

namespace cvq::detail {
namespace {

inline float block_scale(const uint8_t* b) {
  uint16_t h;
  std::memcpy(&h, b, 2);
  return _cvtsh_ss(h);
}

// Chunk c (16 elements) of a q8_0 row: block c/2, elements (c%2)*16 ...
struct Q8Loader {
  const uint8_t* base;
  int64_t stride;
  int d;
  __m512 operator()(int64_t t, int c, __mmask16) const {
    const uint8_t* b = base + t * stride + (c >> 1) * 34;
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2 + (c & 1) * 16));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_set1_ps(block_scale(b)));
  }
  void prefetch(int64_t t) const { prefetch_bytes(base + t * stride, stride); }
};

// Chunk c of a q4_0 row: block c/2; elements 0..15 are the low nibbles, 16..31 the high nibbles.
struct Q4Loader {
  const uint8_t* base;
  int64_t stride;
  int d;
  __m512 operator()(int64_t t, int c, __mmask16) const {
    const uint8_t* b = base + t * stride + (c >> 1) * 18;
    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)));
    q = (c & 1) ? _mm512_srli_epi32(q, 4) : _mm512_and_si512(q, _mm512_set1_epi32(15));
    q = _mm512_sub_epi32(q, _mm512_set1_epi32(8));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(q), _mm512_set1_ps(block_scale(b)));
  }
  void prefetch(int64_t t) const { prefetch_bytes(base + t * stride, stride); }
};

}  // namespace

void qblock_scores_avx512(QBlockKind kind, const float* q, int rows, int d, const uint8_t* k, int64_t stride, int64_t n,
                          float scale, float* scores, int64_t ld) {
  if (kind == QBlockKind::Q8_0) {
    scores_tiles(q, rows, d, n, scale, scores, ld, Q8Loader{k, stride, d});
  } else {
    scores_tiles(q, rows, d, n, scale, scores, ld, Q4Loader{k, stride, d});
  }
}

void qblock_values_avx512(QBlockKind kind, const float* p, int64_t ld, int rows, int d, const uint8_t* v,
                          int64_t stride, int64_t n, float* out) {
  if (kind == QBlockKind::Q8_0) {
    values_tiles(p, ld, rows, d, n, out, Q8Loader{v, stride, d});
  } else {
    values_tiles(p, ld, rows, d, n, out, Q4Loader{v, stride, d});
  }
}

}  // namespace cvq::detail
