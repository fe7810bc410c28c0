#pragma once
// Generic AVX-512 score / value loops over keys (values) read as 16-lane float chunks produced by
// a loader: fp16, bf16, f32 and llama.cpp block formats plug in a loader that dequantizes one chunk
// of 16 elements in registers. Row counts are template parameters so the accumulators stay in
// registers. Include only from *_avx512.cpp files.
#include <algorithm>
#include <cstdint>

#include "kernels/cpu/simd_avx512.h"

namespace cvq::detail {

inline __mmask16 chunk_mask(int c, int nc, int d) {
  if (c < nc - 1 || d % 16 == 0) return static_cast<__mmask16>(0xFFFF);
  return static_cast<__mmask16>((1u << (d % 16)) - 1);
}

// A loader is a small struct with
//   __m512 operator()(int64_t t, int c, __mmask16 m) const  — elements [c*16, c*16+16) of token t
//                                                              (lanes outside mask m zero);
//   void prefetch(int64_t t) const                          — bring token t towards L1.
// Loaders are taken by value so the compiler sees they do not alias the accumulators.
inline void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}
constexpr int64_t kPrefetchTokens = 16;

// RB rows x 4 tokens at a time; each key chunk is converted once and used by every row.
template <int RB, typename Load>
inline void scores_rows(const float* q, int d, int64_t n, float scale, float* scores, int64_t ld, const Load load_key) {
  const int nc = (d + 15) / 16;
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) {
    if (t + kPrefetchTokens + 4 <= n)
      for (int j = 0; j < 4; ++j) load_key.prefetch(t + kPrefetchTokens + j);
    __m512 acc[RB][4];
    for (int i = 0; i < RB; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int c = 0; c < nc; ++c) {
      const __mmask16 m = chunk_mask(c, nc, d);
      const __m512 k0 = load_key(t + 0, c, m), k1 = load_key(t + 1, c, m);
      const __m512 k2 = load_key(t + 2, c, m), k3 = load_key(t + 3, c, m);
      for (int i = 0; i < RB; ++i) {
        const __m512 qv = _mm512_maskz_loadu_ps(m, q + static_cast<int64_t>(i) * d + c * 16);
        acc[i][0] = _mm512_fmadd_ps(qv, k0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(qv, k1, acc[i][1]);
        acc[i][2] = _mm512_fmadd_ps(qv, k2, acc[i][2]);
        acc[i][3] = _mm512_fmadd_ps(qv, k3, acc[i][3]);
      }
    }
    for (int i = 0; i < RB; ++i) {
      const __m128 s = _mm_mul_ps(hsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), _mm_set1_ps(scale));
      _mm_storeu_ps(scores + static_cast<int64_t>(i) * ld + t, s);
    }
  }
  for (; t < n; ++t) {
    __m512 acc[RB];
    for (int i = 0; i < RB; ++i) acc[i] = _mm512_setzero_ps();
    for (int c = 0; c < nc; ++c) {
      const __mmask16 m = chunk_mask(c, nc, d);
      const __m512 k = load_key(t, c, m);
      for (int i = 0; i < RB; ++i)
        acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + static_cast<int64_t>(i) * d + c * 16), k, acc[i]);
    }
    for (int i = 0; i < RB; ++i) scores[i * ld + t] = scale * _mm512_reduce_add_ps(acc[i]);
  }
}

template <typename Load>
inline void scores_tiles(const float* q, int rows, int d, int64_t n, float scale, float* scores, int64_t ld,
                         const Load load_key) {
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const float* qb = q + static_cast<int64_t>(r0) * d;
    float* sb = scores + static_cast<int64_t>(r0) * ld;
    switch (std::min(4, rows - r0)) {
      case 4:
        scores_rows<4>(qb, d, n, scale, sb, ld, load_key);
        break;
      case 3:
        scores_rows<3>(qb, d, n, scale, sb, ld, load_key);
        break;
      case 2:
        scores_rows<2>(qb, d, n, scale, sb, ld, load_key);
        break;
      default:
        scores_rows<1>(qb, d, n, scale, sb, ld, load_key);
        break;
    }
  }
}

// out[r][c] += sum_t p[r][t] v_t[c] for RB rows and CB chunks starting at chunk c0, held in registers.
template <int RB, int CB, typename Load>
inline void values_rows(const float* p, int64_t ld, int d, int c0, int64_t n, float* out, const Load load_val) {
  const int nc = (d + 15) / 16;
  __mmask16 m[CB];
  for (int j = 0; j < CB; ++j) m[j] = chunk_mask(c0 + j, nc, d);
  __m512 acc[RB][CB];
  for (int i = 0; i < RB; ++i)
    for (int j = 0; j < CB; ++j)
      acc[i][j] = _mm512_maskz_loadu_ps(m[j], out + static_cast<int64_t>(i) * d + (c0 + j) * 16);
  for (int64_t t = 0; t < n; ++t) {
    if (c0 == 0 && t + kPrefetchTokens < n) load_val.prefetch(t + kPrefetchTokens);
    __m512 vv[CB];
    for (int j = 0; j < CB; ++j) vv[j] = load_val(t, c0 + j, m[j]);
    for (int i = 0; i < RB; ++i) {
      const __m512 w = _mm512_set1_ps(p[i * ld + t]);
      for (int j = 0; j < CB; ++j) acc[i][j] = _mm512_fmadd_ps(w, vv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int j = 0; j < CB; ++j)
      _mm512_mask_storeu_ps(out + static_cast<int64_t>(i) * d + (c0 + j) * 16, m[j], acc[i][j]);
}

template <int RB, typename Load>
inline void values_rb(const float* p, int64_t ld, int d, int64_t n, float* out, const Load load_val) {
  const int nc = (d + 15) / 16;
  for (int c0 = 0; c0 < nc; c0 += 4) {
    switch (std::min(4, nc - c0)) {
      case 4:
        values_rows<RB, 4>(p, ld, d, c0, n, out, load_val);
        break;
      case 3:
        values_rows<RB, 3>(p, ld, d, c0, n, out, load_val);
        break;
      case 2:
        values_rows<RB, 2>(p, ld, d, c0, n, out, load_val);
        break;
      default:
        values_rows<RB, 1>(p, ld, d, c0, n, out, load_val);
        break;
    }
  }
}

template <typename Load>
inline void values_tiles(const float* p, int64_t ld, int rows, int d, int64_t n, float* out, const Load load_val) {
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const float* pb = p + static_cast<int64_t>(r0) * ld;
    float* ob = out + static_cast<int64_t>(r0) * d;
    switch (std::min(4, rows - r0)) {
      case 4:
        values_rb<4>(pb, ld, d, n, ob, load_val);
        break;
      case 3:
        values_rb<3>(pb, ld, d, n, ob, load_val);
        break;
      case 2:
        values_rb<2>(pb, ld, d, n, ob, load_val);
        break;
      default:
        values_rb<1>(pb, ld, d, n, ob, load_val);
        break;
    }
  }
}

}  // namespace cvq::detail
