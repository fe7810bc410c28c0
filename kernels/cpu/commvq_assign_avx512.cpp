// AVX-512 versions of the CommVQ per-vector kernels (see commvq_assign.h). Compiled with -mavx512*
// by CMake; only called after cpu_supports(SimdLevel::Avx512).
#include "kernels/cpu/commvq_assign.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512DQ__)

#include "kernels/cpu/simd_avx512.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>

namespace cvq::detail {
namespace {

// Reduces per-lane (min value, first index) pairs to the overall first index of the minimum.
inline CommvqArgmin reduce_argmin(__m512 best, __m512i besti) {
  const float gmin = _mm512_reduce_min_ps(best);
  const __mmask16 m = _mm512_cmp_ps_mask(best, _mm512_set1_ps(gmin), _CMP_EQ_OQ);
  const int idx = _mm512_mask_reduce_min_epi32(m, besti);
  if (m == 0) return {0, gmin};  // all NaN
  return {idx, gmin};
}

// Lane-wise minimum of row a, (g + q) + pa, into rowmin (16 floats per row); returns it.
inline __m512 row_minimum(const float* gfull, const float* p, const __m512 (&qv)[4], float offset, int a,
                          float* rowmin) {
  const float* g = gfull + a * kCommvqSubCodes;
  const __m512 v0 = _mm512_add_ps(_mm512_loadu_ps(g), qv[0]);
  const __m512 v1 = _mm512_add_ps(_mm512_loadu_ps(g + 16), qv[1]);
  const __m512 v2 = _mm512_add_ps(_mm512_loadu_ps(g + 32), qv[2]);
  const __m512 v3 = _mm512_add_ps(_mm512_loadu_ps(g + 48), qv[3]);
  const __m512 m =
      _mm512_add_ps(_mm512_min_ps(_mm512_min_ps(v0, v1), _mm512_min_ps(v2, v3)), _mm512_set1_ps(p[a] + offset));
  _mm512_store_ps(rowmin + a * 16, m);
  return m;
}

// Pass 1 of the pair-sum kernels: per row A the lane-wise minimum over its 64 columns,
// min_k(g + q)_lane + pa (exactly min_k((g + q) + pa), rounding being monotonic), stored in rowmin
// (16 floats per row); returns the overall minimum as a vector to reduce.
inline __m512 pair_sum_row_minima(const float* gfull, const float* p, const __m512 (&qv)[4], float offset,
                                  float* rowmin) {
  __m512 gmin = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  for (int a = 0; a < kCommvqSubCodes; ++a) gmin = _mm512_min_ps(gmin, row_minimum(gfull, p, qv, offset, a, rowmin));
  return gmin;
}

// Threshold on squared distances for a minimum m: (sqrt(m) + cutoff·τ)², never below m. Monotone in m.
inline float cutoff_threshold(float m, float cutoff_tau) {
  const float lim = std::sqrt(std::max(m, 0.0f)) + cutoff_tau;
  return std::max(lim * lim, m);
}

// Pass 1 with row pruning (see commvq_row_bounds): lower bounds for all rows, one exact row for an
// upper bound U of the minimum, then exact minima only of the rows whose bound is within
// cutoff_threshold(U). Returns the rows evaluated as a bit mask and the minimum over them, which is
// the global minimum: a skipped row's values all exceed cutoff_threshold(U) >= U.
inline uint64_t pruned_row_minima(const float* gfull, const float* p, const __m512 (&qv)[4], float offset,
                                  const float* bound, float cutoff_tau, float* rowmin, float* gmin_out) {
  const float* base = bound;
  const float* n = bound + kCommvqSubCodes;
  __m512 h = _mm512_min_ps(
      _mm512_min_ps(_mm512_add_ps(qv[0], _mm512_loadu_ps(n)), _mm512_add_ps(qv[1], _mm512_loadu_ps(n + 16))),
      _mm512_min_ps(_mm512_add_ps(qv[2], _mm512_loadu_ps(n + 32)), _mm512_add_ps(qv[3], _mm512_loadu_ps(n + 48))));
  const float hmin = _mm512_reduce_min_ps(h);
  const __m512 qabs = _mm512_max_ps(_mm512_max_ps(_mm512_abs_ps(qv[0]), _mm512_abs_ps(qv[1])),
                                    _mm512_max_ps(_mm512_abs_ps(qv[2]), _mm512_abs_ps(qv[3])));
  // Margin for float rounding: 1e-5 of every magnitude in the sums (rounding is ~1e-7 of them).
  const float scale = bound[2 * kCommvqSubCodes] + _mm512_reduce_max_ps(qabs) + std::fabs(hmin) + std::fabs(offset);
  const __m512 vh = _mm512_set1_ps(hmin), vscale = _mm512_set1_ps(scale), rel = _mm512_set1_ps(1e-5f);
  const __m512 voff = _mm512_set1_ps(offset);
  __m512 lb[4];
  __m512 lbmin = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  for (int k = 0; k < 4; ++k) {
    const __m512 pa = _mm512_add_ps(_mm512_loadu_ps(p + 16 * k), voff);
    const __m512 b = _mm512_loadu_ps(base + 16 * k);
    const __m512 slack = _mm512_mul_ps(rel, _mm512_add_ps(vscale, _mm512_add_ps(_mm512_abs_ps(pa), _mm512_abs_ps(b))));
    lb[k] = _mm512_sub_ps(_mm512_add_ps(_mm512_add_ps(pa, b), vh), slack);
    lbmin = _mm512_min_ps(lbmin, lb[k]);
  }
  const __m512 vlbmin = _mm512_set1_ps(_mm512_reduce_min_ps(lbmin));
  int a0 = 0;
  for (int k = 0; k < 4; ++k) {
    const __mmask16 eq = _mm512_cmp_ps_mask(lb[k], vlbmin, _CMP_EQ_OQ);
    if (eq) {
      a0 = 16 * k + __builtin_ctz(eq);
      break;
    }
  }
  __m512 gmin = row_minimum(gfull, p, qv, offset, a0, rowmin);
  const __m512 t2 = _mm512_set1_ps(cutoff_threshold(_mm512_reduce_min_ps(gmin), cutoff_tau));
  uint64_t rows = 0;
  for (int k = 0; k < 4; ++k) {
    rows |= static_cast<uint64_t>(_mm512_cmp_ps_mask(lb[k], t2, _CMP_LE_OQ)) << (16 * k);
  }
  rows |= uint64_t{1} << a0;
  for (uint64_t r = rows & ~(uint64_t{1} << a0); r; r &= r - 1) {
    gmin = _mm512_min_ps(gmin, row_minimum(gfull, p, qv, offset, __builtin_ctzll(r), rowmin));
  }
  *gmin_out = _mm512_reduce_min_ps(gmin);
  return rows;
}

// First index c in row a with (g + q) + pa == value, or -1.
inline int first_equal_in_row(const float* gfull, const float* p, const __m512 (&qv)[4], float offset, int a,
                              float value) {
  const float* g = gfull + a * kCommvqSubCodes;
  const __m512 pa = _mm512_set1_ps(p[a] + offset), vv = _mm512_set1_ps(value);
  for (int k = 0; k < 4; ++k) {
    const __m512 v = _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(g + 16 * k), qv[k]), pa);
    const __mmask16 eq = _mm512_cmp_ps_mask(v, vv, _CMP_EQ_OQ);
    if (eq) return a * kCommvqSubCodes + 16 * k + __builtin_ctz(eq);
  }
  return -1;
}

}  // namespace

bool commvq_assign_avx512_compiled() { return true; }

CommvqArgmin commvq_pair_sum_argmin_avx512(const float* gfull, const float* p, const float* q, float offset, float* out,
                                           const float* bound) {
  const __m512 qv[4] = {_mm512_loadu_ps(q), _mm512_loadu_ps(q + 16), _mm512_loadu_ps(q + 32), _mm512_loadu_ps(q + 48)};
  if (out) {  // every value is wanted: compute and store them, then scan for the first minimum
    __m512 gmin = _mm512_set1_ps(std::numeric_limits<float>::infinity());
    for (int a = 0; a < kCommvqSubCodes; ++a) {
      const float* g = gfull + a * kCommvqSubCodes;
      const __m512 pa = _mm512_set1_ps(p[a] + offset);
      for (int k = 0; k < 4; ++k) {
        const __m512 v = _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(g + 16 * k), qv[k]), pa);
        _mm512_storeu_ps(out + a * kCommvqSubCodes + 16 * k, v);
        gmin = _mm512_min_ps(gmin, v);
      }
    }
    const float m = _mm512_reduce_min_ps(gmin);
    const __m512 mv = _mm512_set1_ps(m);
    for (int c = 0; c < kCommvqCodewords; c += 16) {
      const __mmask16 eq = _mm512_cmp_ps_mask(_mm512_loadu_ps(out + c), mv, _CMP_EQ_OQ);
      if (eq) return {c + __builtin_ctz(eq), m};
    }
    return {0, m};  // NaN everywhere
  }
  alignas(64) float rowmin[kCommvqSubCodes * 16];
  float m;
  uint64_t rows = ~uint64_t{0};
  if (bound) {
    rows = pruned_row_minima(gfull, p, qv, offset, bound, 0.0f, rowmin, &m);
  } else {
    m = _mm512_reduce_min_ps(pair_sum_row_minima(gfull, p, qv, offset, rowmin));
  }
  const __m512 mv = _mm512_set1_ps(m);
  for (; rows; rows &= rows - 1) {
    const int a = __builtin_ctzll(rows);
    if (_mm512_cmp_ps_mask(_mm512_load_ps(rowmin + a * 16), mv, _CMP_EQ_OQ)) {
      const int c = first_equal_in_row(gfull, p, qv, offset, a, m);
      if (c >= 0) return {c, m};
    }
  }
  return {0, m};
}

CommvqArgmin commvq_pair_soft_assign_avx512(const float* gfull, const float* p, const float* q, float offset, float tau,
                                            float cutoff, float* counts, float* wa, float* wb, CommvqSoftScratch& s,
                                            const float* bound) {
  const __m512 qv[4] = {_mm512_loadu_ps(q), _mm512_loadu_ps(q + 16), _mm512_loadu_ps(q + 32), _mm512_loadu_ps(q + 48)};
  float gmin;
  uint64_t rows = ~uint64_t{0};
  if (bound) {
    rows = pruned_row_minima(gfull, p, qv, offset, bound, cutoff * tau, s.rowmin, &gmin);
  } else {
    gmin = _mm512_reduce_min_ps(pair_sum_row_minima(gfull, p, qv, offset, s.rowmin));
  }
  // The same threshold function the row pruning used for its upper bound (monotone), so no row it
  // skipped can hold a codeword within this threshold.
  const float dmin = std::sqrt(std::max(gmin, 0.0f));
  const __m512 t2 = _mm512_set1_ps(cutoff_threshold(gmin, cutoff * tau));
  const __m512 vdmin = _mm512_set1_ps(dmin), vinv_tau = _mm512_set1_ps(1.0f / tau), zero = _mm512_setzero_ps();
  const __m512 vgmin = _mm512_set1_ps(gmin);
  // 16-wide pieces (row a, quarter k) holding a codeword within the cutoff: their un-normalized
  // weights into s.w, the piece numbers a·4 + k into s.idx (in index order). Pieces with nothing in
  // range would only add zeros, so they are skipped.
  int n_pieces = 0;
  int argmin = -1;
  __m512 z = zero;
  for (; rows; rows &= rows - 1) {
    const int a = __builtin_ctzll(rows);
    if (!_mm512_cmp_ps_mask(_mm512_load_ps(s.rowmin + a * 16), t2, _CMP_LE_OQ)) continue;
    const float* g = gfull + a * kCommvqSubCodes;
    const __m512 pa = _mm512_set1_ps(p[a] + offset);
    for (int k = 0; k < 4; ++k) {
      const __m512 v = _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(g + 16 * k), qv[k]), pa);
      const __mmask16 in = _mm512_cmp_ps_mask(v, t2, _CMP_LE_OQ);
      if (!in) continue;
      const __m512 d = _mm512_sqrt_ps(_mm512_max_ps(v, zero));
      const __m512 e = _mm512_maskz_mov_ps(in, exp512(_mm512_mul_ps(_mm512_sub_ps(vdmin, d), vinv_tau)));
      _mm512_store_ps(s.w + n_pieces * 16, e);
      s.idx[n_pieces++] = a * 4 + k;
      z = _mm512_add_ps(z, e);
      if (argmin < 0) {
        const __mmask16 eq = _mm512_cmp_ps_mask(v, vgmin, _CMP_EQ_OQ);
        if (eq) argmin = a * kCommvqSubCodes + 16 * k + __builtin_ctz(eq);
      }
    }
  }
  if (n_pieces == 0 || argmin < 0) {  // NaN input: all weight on the first index
    counts[0] += 1.0f;
    wa[0] += 1.0f;
    wb[0] += 1.0f;
    return {0, gmin};
  }
  const __m512 inv_z = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(z));
  __m512 wb_acc[4] = {zero, zero, zero, zero};
  __m512 row = zero;
  for (int i = 0; i < n_pieces; ++i) {
    const int a = s.idx[i] >> 2, k = s.idx[i] & 3;
    const __m512 w = _mm512_mul_ps(_mm512_load_ps(s.w + i * 16), inv_z);
    float* cp = counts + a * kCommvqSubCodes + 16 * k;
    _mm512_storeu_ps(cp, _mm512_add_ps(_mm512_loadu_ps(cp), w));
    wb_acc[k] = _mm512_add_ps(wb_acc[k], w);
    row = _mm512_add_ps(row, w);
    if (i + 1 == n_pieces || (s.idx[i + 1] >> 2) != a) {
      wa[a] += _mm512_reduce_add_ps(row);
      row = zero;
    }
  }
  for (int k = 0; k < 4; ++k) _mm512_storeu_ps(wb + 16 * k, _mm512_add_ps(_mm512_loadu_ps(wb + 16 * k), wb_acc[k]));
  return {argmin, gmin};
}

CommvqArgmin commvq_argmin4096_avx512(const float* v) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512 best = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  __m512i besti = _mm512_setzero_si512();
  for (int c = 0; c < kCommvqCodewords; c += 16) {
    const __m512 x = _mm512_loadu_ps(v + c);
    const __mmask16 m = _mm512_cmp_ps_mask(x, best, _CMP_LT_OQ);
    best = _mm512_mask_mov_ps(best, m, x);
    besti = _mm512_mask_mov_epi32(besti, m, _mm512_add_epi32(lane, _mm512_set1_epi32(c)));
  }
  return reduce_argmin(best, besti);
}

int commvq_soft_accumulate_avx512(const float* dist2, float dmin2, float tau, float cutoff, float* counts, float* wa,
                                  float* wb, float* dense_out, CommvqSoftScratch& s) {
  const float dmin = std::sqrt(std::max(dmin2, 0.0f));
  const __m512 t2 = _mm512_set1_ps(cutoff_threshold(dmin2, cutoff * tau));
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int n = 0;
  for (int c = 0; c < kCommvqCodewords; c += 16) {
    const __m512 x = _mm512_loadu_ps(dist2 + c);
    const __mmask16 m = _mm512_cmp_ps_mask(x, t2, _CMP_LE_OQ);
    if (m) {  // compress in registers, then a plain store (memory-destination compress is slow on Zen 4)
      _mm512_storeu_ps(s.w + n, _mm512_maskz_compress_ps(m, x));
      _mm512_storeu_si512(s.idx + n, _mm512_maskz_compress_epi32(m, _mm512_add_epi32(lane, _mm512_set1_epi32(c))));
      n += __builtin_popcount(m);
    }
  }
  if (n == 0) {
    s.idx[0] = commvq_argmin4096_avx512(dist2).index;
    s.w[0] = std::max(dmin2, 0.0f);
    n = 1;
  }
  const __m512 vdmin = _mm512_set1_ps(dmin), vinv_tau = _mm512_set1_ps(1.0f / tau), zero = _mm512_setzero_ps();
  __m512 z = _mm512_setzero_ps();
  for (int k = 0; k < n; k += 16) {
    const __mmask16 m = n - k >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - k)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(m, s.w + k);
    const __m512 d = _mm512_sqrt_ps(_mm512_max_ps(x, zero));
    const __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_mul_ps(_mm512_sub_ps(vdmin, d), vinv_tau)));
    _mm512_mask_storeu_ps(s.w + k, m, e);
    z = _mm512_add_ps(z, e);
  }
  const float inv_z = 1.0f / _mm512_reduce_add_ps(z);
  if (dense_out) {
    for (int c = 0; c < kCommvqCodewords; c += 16) _mm512_storeu_ps(dense_out + c, zero);
  }
  for (int k = 0; k < n; ++k) {
    const int c = s.idx[k];
    const float w = s.w[k] * inv_z;
    counts[c] += w;
    wa[c >> 6] += w;
    wb[c & 63] += w;
    s.w[k] = w;
    if (dense_out) dense_out[c] = w;
  }
  return n;
}

}  // namespace cvq::detail

#else  // not compiled for AVX-512: the dispatcher never selects these

namespace cvq::detail {
bool commvq_assign_avx512_compiled() { return false; }
CommvqArgmin commvq_pair_sum_argmin_avx512(const float*, const float*, const float*, float, float*, const float*) {
  return {};
}
CommvqArgmin commvq_pair_soft_assign_avx512(const float*, const float*, const float*, float, float, float, float*,
                                            float*, float*, CommvqSoftScratch&, const float*) {
  return {};
}
CommvqArgmin commvq_argmin4096_avx512(const float*) { return {}; }
int commvq_soft_accumulate_avx512(const float*, float, float, float, float*, float*, float*, float*,
                                  CommvqSoftScratch&) {
  return 0;
}
}  // namespace cvq::detail

#endif
