// AVX-512 versions of llama.cpp's CPU arithmetic (ggml_arith.h): the same operations lane for lane
// as the portable file, only faster. Compiled with the AVX-512 flags plus -ffp-contract=off.
#include "kernels/cpu/ggml_arith.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__)

#include "kernels/cpu/simd_avx512.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"

namespace cvq::detail {
namespace {

// hsum8 of each 256-bit half of v (see ggml_arith.h).
inline void hsum8_halves(__m512 v, float* lo, float* hi) {
  alignas(64) float a[16];
  _mm512_store_ps(a, v);
  *lo = ((a[4] + a[0]) + (a[6] + a[2])) + ((a[5] + a[1]) + (a[7] + a[3]));
  *hi = ((a[12] + a[8]) + (a[14] + a[10])) + ((a[13] + a[9]) + (a[15] + a[11]));
}

// 8 int32 lanes per 256-bit half: lane i = Σ bytes 4i..4i+3 of u·s (u unsigned, s signed; no
// saturation for the ranges here: |u·s| pairs stay below 2^15).
inline __m512 lane_sums(__m512i u, __m512i s) {
  const __m512i pairs = _mm512_maddubs_epi16(u, s);
  return _mm512_cvtepi32_ps(_mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
}

inline __m512i two_rows(const int8_t* a0, const int8_t* a1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a0))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a1)), 1);
}

inline __m512 two_scales(float lo, float hi) { return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1); }

// One weight row (unpacked: 32 bytes per block, its scales dw and, for Q4_1, mins mw) against every
// activation row, two activation rows per vector.
template <bool kQ41>
void row_times_activations(const uint8_t* wq, const float* dw, const float* mw, const GgmlQ8Rows& a, int64_t r,
                           float* y, int64_t ldy) {
  const int64_t nb = a.blocks;
  for (int64_t t = 0; t < a.rows; t += 2) {
    const int64_t t1 = t + 1 < a.rows ? t + 1 : t;
    const int8_t* q0 = a.q.data() + t * nb * 32;
    const int8_t* q1 = a.q.data() + t1 * nb * 32;
    const float* d0 = a.d.data() + t * nb;
    const float* d1 = a.d.data() + t1 * nb;
    __m512 acc = _mm512_setzero_ps();
    float summs0 = 0.0f, summs1 = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      const __m512i w = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + b * 32)));
      __m512i act = two_rows(q0 + b * 32, q1 + b * 32);
      __m512i wu = w;
      if constexpr (kQ41) {
        summs0 = std::fmaf(mw[b], a.s[t * nb + b], summs0);
        summs1 = std::fmaf(mw[b], a.s[t1 * nb + b], summs1);
      } else {  // signed weights: |w| times the activation with w's sign
        wu = _mm512_abs_epi8(w);
        act = _mm512_mask_sub_epi8(act, _mm512_movepi8_mask(w), _mm512_setzero_si512(), act);
      }
      acc = _mm512_fmadd_ps(two_scales(dw[b] * d0[b], dw[b] * d1[b]), lane_sums(wu, act), acc);
    }
    float lo, hi;
    hsum8_halves(acc, &lo, &hi);
    y[t * ldy + r] = lo + summs0;
    if (t1 != t) y[t1 * ldy + r] = hi + summs1;
  }
}

// ggml's vector exp, lane for lane (see ggml_expf in ggml_arith.cpp).
inline __m512 v_expf(__m512 x) {
  const __m512 r = _mm512_set1_ps(0x1.8p23f);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
  const __m512 n = _mm512_sub_ps(z, r);
  const __m512 b =
      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
  const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 j = _mm512_fmadd_ps(
      _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                      _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
      u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
  const __m512 res = _mm512_scalef_ps(j, n);
  if (!big) return res;
  const __m512 zero = _mm512_setzero_ps();
  const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ), _mm512_set1_ps(INFINITY), zero);
  return _mm512_mask_blend_ps(big, res, alt);
}

inline __m512 f16_round(__m512 x) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

}  // namespace

bool ggml_arith_avx512_compiled() { return true; }

void ggml_matmul_q4_1_avx512(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a, float* y,
                             int64_t ldy) {
  const int64_t nb = a.blocks;
  std::vector<uint8_t> wq(static_cast<size_t>(nb) * 32);
  std::vector<float> dw(static_cast<size_t>(nb)), mw(static_cast<size_t>(nb));
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * 20;
      uint16_t dh, mh;
      std::memcpy(&dh, blk, 2);
      std::memcpy(&mh, blk + 2, 2);
      dw[b] = fp16_to_float(dh);
      mw[b] = fp16_to_float(mh);
      for (int k = 0; k < 16; ++k) {
        wq[b * 32 + k] = blk[4 + k] & 15;
        wq[b * 32 + 16 + k] = blk[4 + k] >> 4;
      }
    }
    row_times_activations<true>(wq.data(), dw.data(), mw.data(), a, r, y, ldy);
  }
}

void ggml_matmul_q8_0_avx512(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a, float* y,
                             int64_t ldy) {
  const int64_t nb = a.blocks;
  std::vector<uint8_t> wq(static_cast<size_t>(nb) * 32);
  std::vector<float> dw(static_cast<size_t>(nb));
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      uint16_t dh;
      std::memcpy(&dh, row + b * 34, 2);
      dw[b] = fp16_to_float(dh);
      std::memcpy(wq.data() + b * 32, row + b * 34 + 2, 32);
    }
    row_times_activations<false>(wq.data(), dw.data(), nullptr, a, r, y, ldy);
  }
}

void ggml_swiglu_avx512(const float* gate, const float* up, int64_t n, float* y) {
  int64_t i = 0;
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(gate + i);
    const __m512 e = v_expf(_mm512_sub_ps(_mm512_setzero_ps(), x));
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
  }
  for (; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void ggml_attend_row_avx512(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int d,
                            float scale, float* out, float* scratch) {
  const int64_t np = (n + 15) / 16 * 16;
  float* qh = scratch;
  float* p = scratch + d;
  float* acc = p + np;
  for (int c = 0; c < d; c += 16) _mm512_storeu_ps(qh + c, f16_round(_mm512_loadu_ps(q + c)));
  float mx = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    const float* kt = k + t * stride;
    __m512 s = _mm512_setzero_ps();
    for (int c = 0; c < d; c += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(kt + c), _mm512_loadu_ps(qh + c), s);
    p[t] = _mm512_reduce_add_ps(s) * scale;
    mx = std::max(mx, p[t]);
  }
  double sum = 0.0;
  const __m512 vmx = _mm512_set1_ps(mx);
  for (int64_t c = 0; c < np; c += 16) {
    const __mmask16 valid = n - c >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - c)) - 1);
    const __m512 x = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), valid, p + c);
    const __m512 e = v_expf(_mm512_sub_ps(x, vmx));
    _mm512_storeu_ps(p + c, e);
    sum += static_cast<double>(_mm512_reduce_add_ps(e));
  }
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / sum));
  for (int64_t c = 0; c < np; c += 16) _mm512_storeu_ps(p + c, f16_round(_mm512_mul_ps(_mm512_loadu_ps(p + c), inv)));
  for (int i = 0; i < 16 * d; i += 16) _mm512_storeu_ps(acc + i, _mm512_setzero_ps());
  for (int64_t t = 0; t < n; ++t) {
    float* lane = acc + (t % 16) * d;
    const float* vt = v + t * stride;
    const __m512 pt = _mm512_set1_ps(p[t]);
    for (int c = 0; c < d; c += 16) {
      _mm512_storeu_ps(lane + c, _mm512_fmadd_ps(_mm512_loadu_ps(vt + c), pt, _mm512_loadu_ps(lane + c)));
    }
  }
  // hsum16 over the lanes, for 16 output columns at a time.
  for (int c = 0; c < d; c += 16) {
    __m512 l[16];
    for (int i = 0; i < 16; ++i) l[i] = _mm512_loadu_ps(acc + i * d + c);
    __m512 t3[8], t6[4];
    for (int i = 0; i < 8; ++i) t3[i] = _mm512_add_ps(l[8 + i], l[i]);
    for (int i = 0; i < 4; ++i) t6[i] = _mm512_add_ps(t3[4 + i], t3[i]);
    _mm512_storeu_ps(out + c, _mm512_add_ps(_mm512_add_ps(t6[0], t6[2]), _mm512_add_ps(t6[1], t6[3])));
  }
}

}  // namespace cvq::detail

#else

namespace cvq::detail {
bool ggml_arith_avx512_compiled() { return false; }
void ggml_matmul_q4_1_avx512(const uint8_t*, size_t, int64_t, int64_t, const GgmlQ8Rows&, float*, int64_t) {}
void ggml_matmul_q8_0_avx512(const uint8_t*, size_t, int64_t, int64_t, const GgmlQ8Rows&, float*, int64_t) {}
void ggml_swiglu_avx512(const float*, const float*, int64_t, float*) {}
void ggml_attend_row_avx512(const float*, const float*, const float*, int64_t, int64_t, int, float, float*, float*) {}
}  // namespace cvq::detail

#endif
