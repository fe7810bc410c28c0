// AVX-512 KIVI kernels. Keys: lanes are 16 tokens of one channel (codes packed along tokens), the
// per-group factor q*s is precomputed; values: lanes are 16 channels of one token, dequantized in
// registers (code*s + z) and accumulated with each row's probability.
#include "kernels/cpu/simd_avx512.h"  // first: it silences GCC 12 intrinsic false positives

#include <algorithm>

#include "kernels/cpu/kivi_attention.h"

namespace cvq::detail {
namespace {

// Codes of elements j .. j+15 of a packed group (j a multiple of 16) as 16 int32 lanes; elements at
// or past n_left = (group size - j) are garbage (never read past the group's words).
template <int B>
inline __m512i extract16(const uint32_t* w, int j, int n_left) {
  if constexpr (B == 1) {
    const __m512i v = _mm512_set1_epi32(static_cast<int>(w[j >> 5] >> (j & 16)));
    const __m512i sh = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_and_si512(_mm512_srlv_epi32(v, sh), _mm512_set1_epi32(1));
  } else if constexpr (B == 2) {
    const __m512i v = _mm512_set1_epi32(static_cast<int>(w[j >> 4]));
    const __m512i sh = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_and_si512(_mm512_srlv_epi32(v, sh), _mm512_set1_epi32(3));
  } else {
    const uint32_t w0 = w[j >> 3], w1 = n_left > 8 ? w[(j >> 3) + 1] : 0u;
    const __m512i v =
        _mm512_inserti64x4(_mm512_set1_epi32(static_cast<int>(w0)), _mm256_set1_epi32(static_cast<int>(w1)), 1);
    const __m512i sh = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
    return _mm512_and_si512(_mm512_srlv_epi32(v, sh), _mm512_set1_epi32(15));
  }
}

inline void prefetch_group(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}

inline __mmask16 lane_mask(int64_t lo, int64_t hi) {  // lanes l with lo <= l < hi, within [0, 16)
  lo = std::max<int64_t>(lo, 0);
  hi = std::min<int64_t>(hi, 16);
  if (hi <= lo) return 0;
  return static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

// Scores of RB rows for the tokens [j0, j1) of one group (TWO: 32 tokens per pass, else 16).
template <int B, int RB, bool TWO>
inline void scores_chunk(const uint32_t* cw, int words, int d, int G, const float* qs, const float* bias, int jc,
                         __mmask16 m0, __mmask16 m1, float* scores, int64_t ld, int64_t col) {
  __m512 a0[RB], a1[RB];
  for (int i = 0; i < RB; ++i) a0[i] = a1[i] = _mm512_set1_ps(bias[i]);
  for (int c = 0; c < d; ++c) {
    const uint32_t* w = cw + static_cast<int64_t>(c) * words;
    const __m512 c0 = _mm512_cvtepi32_ps(extract16<B>(w, jc, G - jc));
    if constexpr (TWO) {
      const __m512 c1 = _mm512_cvtepi32_ps(extract16<B>(w, jc + 16, G - jc - 16));
      for (int i = 0; i < RB; ++i) {
        const __m512 qv = _mm512_set1_ps(qs[static_cast<int64_t>(i) * d + c]);
        a0[i] = _mm512_fmadd_ps(qv, c0, a0[i]);
        a1[i] = _mm512_fmadd_ps(qv, c1, a1[i]);
      }
    } else {
      for (int i = 0; i < RB; ++i)
        a0[i] = _mm512_fmadd_ps(_mm512_set1_ps(qs[static_cast<int64_t>(i) * d + c]), c0, a0[i]);
    }
  }
  for (int i = 0; i < RB; ++i) {
    // Column of lane 0 is `col`; masked-off lanes may lie outside the output range.
    float* dst = scores + static_cast<int64_t>(i) * ld;
    if (col >= 0) {
      _mm512_mask_storeu_ps(dst + col, m0, a0[i]);
      if (TWO) _mm512_mask_storeu_ps(dst + col + 16, m1, a1[i]);
    } else {
      alignas(64) float tmp[32];
      _mm512_store_ps(tmp, a0[i]);
      _mm512_store_ps(tmp + 16, a1[i]);
      for (int l = 0; l < (TWO ? 32 : 16); ++l)
        if (((l < 16 ? m0 : m1) >> (l & 15)) & 1) dst[col + l] = tmp[l];
    }
  }
}

template <int B, int RB>
void scores_rows(const KiviKeyView& k, const float* q, float scale, int64_t t0, int64_t t1, float* scores, int64_t ld) {
  const int d = k.d, G = k.group;
  alignas(64) float qs[RB * 256];
  float bias[RB];
  const int nc = (d + 15) / 16;
  const __mmask16 ctail = static_cast<__mmask16>(d % 16 == 0 ? 0xFFFF : (1u << (d % 16)) - 1);
  for (int64_t g = t0 / G; g * G < t1; ++g) {
    const int64_t gs = g * G;
    const int j0 = static_cast<int>(std::max(t0, gs) - gs), j1 = static_cast<int>(std::min(t1, gs + G) - gs);
    const uint32_t* cw = k.codes + g * k.chan_stride * k.words;
    const uint16_t* sc = k.scale + g * k.chan_stride;
    const uint16_t* zp = k.zero + g * k.chan_stride;
    if (j1 - j0 == G) prefetch_group(cw + k.chan_stride * k.words, static_cast<int64_t>(d) * k.words * 4);
    // q' = scale * q * s and bias = scale * q . z for this group
    for (int r = 0; r < RB; ++r) {
      const float* qr = q + static_cast<int64_t>(r) * d;
      float* qsr = qs + r * d;
      __m512 bz = _mm512_setzero_ps();
      const __m512 vscale = _mm512_set1_ps(scale);
      for (int c = 0; c < nc; ++c) {
        const __mmask16 m = c == nc - 1 ? ctail : static_cast<__mmask16>(0xFFFF);
        const __m512 qv = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, qr + c * 16), vscale);
        const __m512 sv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, sc + c * 16));
        const __m512 zv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, zp + c * 16));
        _mm512_mask_storeu_ps(qsr + c * 16, m, _mm512_mul_ps(qv, sv));
        bz = _mm512_fmadd_ps(qv, zv, bz);
      }
      bias[r] = _mm512_reduce_add_ps(bz);
    }
    for (int jc = (j0 / 16) * 16; jc < j1; jc += 32) {
      const __mmask16 m0 = lane_mask(j0 - jc, j1 - jc);
      const int64_t col = gs + jc - t0;
      if (jc + 16 < j1) {
        scores_chunk<B, RB, true>(cw, k.words, d, G, qs, bias, jc, m0, lane_mask(j0 - jc - 16, j1 - jc - 16), scores,
                                  ld, col);
      } else {
        scores_chunk<B, RB, false>(cw, k.words, d, G, qs, bias, jc, m0, 0, scores, ld, col);
      }
    }
  }
}

template <int B>
void scores_impl(const KiviKeyView& k, const float* q, int rows, float scale, int64_t t0, int64_t t1, float* scores,
                 int64_t ld) {
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const float* qb = q + static_cast<int64_t>(r0) * k.d;
    float* sb = scores + static_cast<int64_t>(r0) * ld;
    switch (std::min(4, rows - r0)) {
      case 4:
        scores_rows<B, 4>(k, qb, scale, t0, t1, sb, ld);
        break;
      case 3:
        scores_rows<B, 3>(k, qb, scale, t0, t1, sb, ld);
        break;
      case 2:
        scores_rows<B, 2>(k, qb, scale, t0, t1, sb, ld);
        break;
      default:
        scores_rows<B, 1>(k, qb, scale, t0, t1, sb, ld);
        break;
    }
  }
}

// RB rows x CB chunks of 16 channels (chunk c0 ..), accumulators in registers over all tokens.
template <int B, int RB, int CB>
inline void values_block(const KiviValueView& v, const float* p, int64_t ld, int c0, int64_t t0, int64_t t1,
                         float* out) {
  const int d = v.d, G = v.group;
  int grp[CB], off[CB];
  for (int j = 0; j < CB; ++j) {
    grp[j] = (c0 + j) * 16 / G;
    off[j] = (c0 + j) * 16 - grp[j] * G;
  }
  __m512 acc[RB][CB];
  for (int i = 0; i < RB; ++i)
    for (int j = 0; j < CB; ++j) acc[i][j] = _mm512_loadu_ps(out + static_cast<int64_t>(i) * d + (c0 + j) * 16);
  const int64_t row_bytes = v.token_words * 4;
  for (int64_t t = t0; t < t1; ++t) {
    if (c0 == 0 && t + 16 < t1) prefetch_group(v.codes + (t + 16) * v.token_words, row_bytes);
    const uint32_t* cw = v.codes + t * v.token_words;
    const uint16_t* sc = v.scale + t * v.token_groups;
    const uint16_t* zp = v.zero + t * v.token_groups;
    __m512 w[RB];
    for (int i = 0; i < RB; ++i) w[i] = _mm512_set1_ps(p[i * ld + (t - t0)]);
    for (int j = 0; j < CB; ++j) {
      const __m512 codes =
          _mm512_cvtepi32_ps(extract16<B>(cw + static_cast<int64_t>(grp[j]) * v.words, off[j], G - off[j]));
      const __m512 vh =
          _mm512_fmadd_ps(codes, _mm512_set1_ps(_cvtsh_ss(sc[grp[j]])), _mm512_set1_ps(_cvtsh_ss(zp[grp[j]])));
      for (int i = 0; i < RB; ++i) acc[i][j] = _mm512_fmadd_ps(w[i], vh, acc[i][j]);
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int j = 0; j < CB; ++j) _mm512_storeu_ps(out + static_cast<int64_t>(i) * d + (c0 + j) * 16, acc[i][j]);
}

template <int B, int RB>
void values_rows(const KiviValueView& v, const float* p, int64_t ld, int64_t t0, int64_t t1, float* out) {
  const int nc = v.d / 16;
  for (int c0 = 0; c0 < nc; c0 += 4) {
    switch (std::min(4, nc - c0)) {
      case 4:
        values_block<B, RB, 4>(v, p, ld, c0, t0, t1, out);
        break;
      case 3:
        values_block<B, RB, 3>(v, p, ld, c0, t0, t1, out);
        break;
      case 2:
        values_block<B, RB, 2>(v, p, ld, c0, t0, t1, out);
        break;
      default:
        values_block<B, RB, 1>(v, p, ld, c0, t0, t1, out);
        break;
    }
  }
}

template <int B>
void values_impl(const KiviValueView& v, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1, float* out) {
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const float* pb = p + static_cast<int64_t>(r0) * ld;
    float* ob = out + static_cast<int64_t>(r0) * v.d;
    switch (std::min(4, rows - r0)) {
      case 4:
        values_rows<B, 4>(v, pb, ld, t0, t1, ob);
        break;
      case 3:
        values_rows<B, 3>(v, pb, ld, t0, t1, ob);
        break;
      case 2:
        values_rows<B, 2>(v, pb, ld, t0, t1, ob);
        break;
      default:
        values_rows<B, 1>(v, pb, ld, t0, t1, ob);
        break;
    }
  }
}

}  // namespace

bool kivi_scores_avx512(const KiviKeyView& k, const float* q, int rows, float scale, int64_t t0, int64_t t1,
                        float* scores, int64_t ld) {
  if (k.d > 256) return false;  // q' buffer on the stack
  switch (k.bits) {
    case 1:
      scores_impl<1>(k, q, rows, scale, t0, t1, scores, ld);
      return true;
    case 2:
      scores_impl<2>(k, q, rows, scale, t0, t1, scores, ld);
      return true;
    case 4:
      scores_impl<4>(k, q, rows, scale, t0, t1, scores, ld);
      return true;
    default:
      return false;
  }
}

bool kivi_values_avx512(const KiviValueView& v, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1,
                        float* out) {
  if (v.group % 16 != 0 || v.d % 16 != 0) return false;
  switch (v.bits) {
    case 1:
      values_impl<1>(v, p, ld, rows, t0, t1, out);
      return true;
    case 2:
      values_impl<2>(v, p, ld, rows, t0, t1, out);
      return true;
    case 4:
      values_impl<4>(v, p, ld, rows, t0, t1, out);
      return true;
    default:
      return false;
  }
}

}  // namespace cvq::detail
