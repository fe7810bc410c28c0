// AVX2 (+FMA, F16C) gemv kernels. Compiled with -mavx2 -mfma -mf16c by CMake; only called after
// cpu_supports(SimdLevel::Avx2). See quant_dot.h for the numerics.
//
// Quantized rows: x is quantized once per call to int8 blocks of 32 (thread-local buffer); each
// 32-element piece of a weight row is one vpmaddubsw (unsigned weight codes x signed activations,
// pairs summed in int16 without saturation: codes <= 63, |q_x| <= 127) + vpmaddwd to int32 lanes.
// Weight offsets are removed exactly in integers (precomputed -offset*sum(q_x) per lane); q8_0 uses
// the sign trick (|w| x sign(x, w)) instead. Lanes are scaled by d_w*d_x in float.
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_dot.h"
#include "kernels/cpu/quant_dot_tokens.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace cvq::detail {
namespace {

inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i loadu128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline float half_at(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline int32_t hsum256_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// Unsigned bytes u times signed bytes s, summed in groups of 4 into 8 int32 lanes.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// ---------------------------------------------------------------- activation quantization

struct Activation {
  std::vector<int8_t> q;      // quantized x, element order
  std::vector<int32_t> seed;  // -offset * (sum of 4 consecutive q) per lane
  std::vector<float> d, s;    // per block of 32: d = amax/127 and s = d*sum(q)
  std::vector<float> ksc;     // per 256 elements: d[8], s[8] (K formats)
};

thread_local Activation t_act;

inline int32_t quantize_block32(const float* x, int8_t* q, float* d_out) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
  const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
  const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float amax = _mm_cvtss_f32(m4);
  if (!(amax >= 1e-30f)) {
    std::memset(q, 0, 32);
    *d_out = 0.0f;
    return 0;
  }
  const __m256 id = _mm256_set1_ps(127.0f / amax);
  const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, id));  // round to nearest even
  const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, id));
  const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, id));
  const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, id));
  const int32_t sum = hsum256_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
  // Packing works per 128-bit lane; the permute restores element order.
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                      _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  *d_out = amax / 127.0f;
  return sum;
}

const Activation& quantize_activation(const float* x, int64_t n, int offset, bool k_scales) {
  Activation& a = t_act;
  const int64_t nb = n / 32;
  a.q.resize(static_cast<size_t>(nb * 32));
  a.d.resize(static_cast<size_t>(nb));
  a.s.resize(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) {
    float db;
    const int32_t sum = quantize_block32(x + 32 * b, a.q.data() + 32 * b, &db);
    a.d[static_cast<size_t>(b)] = db;
    a.s[static_cast<size_t>(b)] = db * static_cast<float>(sum);
  }
  if (offset != 0) {
    a.seed.resize(static_cast<size_t>(nb * 8));
    const __m256i off = _mm256_set1_epi8(static_cast<char>(offset));
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i sums = dot_u8s8(off, loadu256(a.q.data() + 32 * b));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.seed.data() + 8 * b),
                          _mm256_sub_epi32(_mm256_setzero_si256(), sums));
    }
  }
  if (k_scales) {
    a.ksc.resize(static_cast<size_t>(nb * 2));
    for (int64_t sb = 0; sb < nb / 8; ++sb) {
      for (int k = 0; k < 8; ++k) {
        a.ksc[static_cast<size_t>(16 * sb + k)] = a.d[static_cast<size_t>(8 * sb + k)];
        a.ksc[static_cast<size_t>(16 * sb + 8 + k)] = a.s[static_cast<size_t>(8 * sb + k)];
      }
    }
  }
  return a;
}

// ---------------------------------------------------------------- 32-element block formats

struct FmtQ4_0 {
  static constexpr int kBytes = 18, kQs = 2, kQh = -1, kOffset = 8;
  static constexpr bool kMin = false;
};
struct FmtQ4_1 {
  static constexpr int kBytes = 20, kQs = 4, kQh = -1, kOffset = 0;
  static constexpr bool kMin = true;
};
struct FmtQ5_0 {
  static constexpr int kBytes = 22, kQs = 6, kQh = 2, kOffset = 16;
  static constexpr bool kMin = false;
};
struct FmtQ5_1 {
  static constexpr int kBytes = 24, kQs = 8, kQh = 4, kOffset = 0;
  static constexpr bool kMin = true;
};

// 0x10 in byte j where bit j of bits is set.
inline __m256i bits_to_0x10(uint32_t bits) {
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

template <class F>
float row_blocks(const uint8_t* row, int64_t nb, const Activation& a) {
  const __m256i m0f = _mm256_set1_epi8(0x0F);
  const int8_t* q = a.q.data();
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float macc0 = 0.0f, macc1 = 0.0f;
  auto block = [&](int64_t b, __m256& acc, float& macc) {
    const uint8_t* blk = row + b * F::kBytes;
    const __m128i t = loadu128(blk + F::kQs);
    __m256i z = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m0f);
    if constexpr (F::kQh >= 0) z = _mm256_or_si256(z, bits_to_0x10(load_u32(blk + F::kQh)));
    __m256i dot = dot_u8s8(z, loadu256(q + 32 * b));
    if constexpr (F::kOffset != 0) dot = _mm256_add_epi32(dot, loadu256(a.seed.data() + 8 * b));
    const __m256 scale = _mm256_set1_ps(half_at(blk) * a.d[static_cast<size_t>(b)]);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc);
    if constexpr (F::kMin) macc += half_at(blk + 2) * a.s[static_cast<size_t>(b)];
  };
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    block(b, acc0, macc0);
    block(b + 1, acc1, macc1);
  }
  if (b < nb) block(b, acc0, macc0);
  return hsum256(_mm256_add_ps(acc0, acc1)) + (macc0 + macc1);
}

float row_q8_0(const uint8_t* row, int64_t nb, const Activation& a) {
  const int8_t* q = a.q.data();
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  auto block = [&](int64_t b, __m256& acc) {
    const uint8_t* blk = row + b * 34;
    const __m256i w = loadu256(blk + 2);
    const __m256i dot = dot_u8s8(_mm256_abs_epi8(w), _mm256_sign_epi8(loadu256(q + 32 * b), w));
    const __m256 scale = _mm256_set1_ps(half_at(blk) * a.d[static_cast<size_t>(b)]);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc);
  };
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    block(b, acc0);
    block(b + 1, acc1);
  }
  if (b < nb) block(b, acc0);
  return hsum256(_mm256_add_ps(acc0, acc1));
}

template <class F>
void gemv_blocks(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Activation& a, int64_t n, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) y[r] = row_blocks<F>(w + static_cast<size_t>(r) * row_bytes, n / 32, a);
}

// ---------------------------------------------------------------- K super-blocks

template <bool kFive>
float row_q45_K(const uint8_t* row, int64_t nsb, const Activation& a) {
  constexpr int64_t B = kFive ? 176 : 144;
  constexpr int kQs = kFive ? 48 : 16;
  const __m256i m0f = _mm256_set1_epi8(0x0F);
  const __m256i m10 = _mm256_set1_epi8(0x10);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), macc = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* b = row + sb * B;
    const int8_t* q = a.q.data() + 256 * sb;
    const uint32_t b0 = load_u32(b + 4), b1 = load_u32(b + 8), b2 = load_u32(b + 12);
    const uint32_t sc_lo = b0 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (b2 & 0x0f0f0f0fu) | (((b0 >> 6) & 0x03030303u) << 4);
    const uint32_t m_lo = b1 & 0x3f3f3f3fu;
    const uint32_t m_hi = ((b2 >> 4) & 0x0f0f0f0fu) | (((b1 >> 6) & 0x03030303u) << 4);
    const __m256 sc = _mm256_cvtepi32_ps(
        _mm256_cvtepu8_epi32(_mm_setr_epi32(static_cast<int>(sc_lo), static_cast<int>(sc_hi), 0, 0)));
    const __m256 mn =
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_setr_epi32(static_cast<int>(m_lo), static_cast<int>(m_hi), 0, 0)));
    const float* ks = a.ksc.data() + 16 * sb;
    const __m256 dk = _mm256_mul_ps(_mm256_mul_ps(sc, _mm256_set1_ps(half_at(b))), _mm256_loadu_ps(ks));
    macc = _mm256_fmadd_ps(_mm256_mul_ps(mn, _mm256_set1_ps(half_at(b + 2))), _mm256_loadu_ps(ks + 8), macc);
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kFive) qh = loadu256(b + 16);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m256i t = loadu256(b + kQs + 32 * j);
      __m256i lo = _mm256_and_si256(t, m0f);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), m0f);
      if constexpr (kFive) {  // bits 2j and 2j+1 of qh become bit 4
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), m10));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), m10));
        qh = _mm256_srli_epi16(qh, 2);
      }
      const __m256i dlo = dot_u8s8(lo, loadu256(q + 64 * j));
      const __m256i dhi = dot_u8s8(hi, loadu256(q + 64 * j + 32));
      acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dlo), _mm256_permutevar8x32_ps(dk, _mm256_set1_epi32(2 * j)), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dhi), _mm256_permutevar8x32_ps(dk, _mm256_set1_epi32(2 * j + 1)), acc1);
    }
  }
  return hsum256(_mm256_add_ps(acc0, acc1)) - hsum256(macc);
}

float row_q6_K(const uint8_t* row, int64_t nsb, const Activation& a) {
  constexpr int64_t B = 210;
  const __m256i m0f = _mm256_set1_epi8(0x0F);
  const __m256i m30 = _mm256_set1_epi8(0x30);
  const __m256i idx_c[4] = {_mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3),
                            _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5), _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7)};
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* b = row + sb * B;
    const int8_t* q = a.q.data() + 256 * sb;
    const int32_t* seed = a.seed.data() + 64 * sb;
    const __m256 d = _mm256_set1_ps(half_at(b + 208));
    const __m256 dx = _mm256_loadu_ps(a.ksc.data() + 16 * sb);
    const __m128i sc8 = loadu128(b + 192);
    // Scale of each group of 16 elements times d and the activation scale of its block of 32.
    const __m256 s_lo = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8)), d),
                                      _mm256_permutevar8x32_ps(dx, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)));
    const __m256 s_hi =
        _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc8, 8))), d),
                      _mm256_permutevar8x32_ps(dx, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7)));
#pragma GCC unroll 4
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = loadu256(b + 64 * h);
      const __m256i ql1 = loadu256(b + 64 * h + 32);
      const __m256i qh = loadu256(b + 128 + 32 * h);
      const __m256i c[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m0f), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
          _mm256_or_si256(_mm256_and_si256(ql1, m0f), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m0f), _mm256_and_si256(qh, m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m0f),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
      };
      const __m256 s = h == 0 ? s_lo : s_hi;
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const __m256i dot =
            _mm256_add_epi32(dot_u8s8(c[k], loadu256(q + 128 * h + 32 * k)), loadu256(seed + 32 * h + 8 * k));
        __m256& acc = (k & 1) ? acc1 : acc0;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_permutevar8x32_ps(s, idx_c[k]), acc);
      }
    }
  }
  return hsum256(_mm256_add_ps(acc0, acc1));
}

// ---------------------------------------------------------------- float rows

enum class FloatKind { F32, F16, BF16 };

template <FloatKind K>
inline __m256 load8(const uint8_t* p) {
  if constexpr (K == FloatKind::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (K == FloatKind::F16) {
    return _mm256_cvtph_ps(loadu128(p));
  } else {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(loadu128(p)), 16));
  }
}

template <FloatKind K>
inline float load1(const uint8_t* p) {
  if constexpr (K == FloatKind::F32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  } else if constexpr (K == FloatKind::F16) {
    return _cvtsh_ss(load_u16(p));
  } else {
    const uint32_t u = static_cast<uint32_t>(load_u16(p)) << 16;
    float v;
    std::memcpy(&v, &u, 4);
    return v;
  }
}

template <FloatKind K>
float row_float(const uint8_t* w, const float* x, int64_t n) {
  constexpr int64_t E = K == FloatKind::F32 ? 4 : 2;
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(load8<K>(w + E * i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(load8<K>(w + E * (i + 8)), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(load8<K>(w + E * (i + 16)), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(load8<K>(w + E * (i + 24)), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load8<K>(w + E * i), _mm256_loadu_ps(x + i), a0);
  float tail = 0.0f;
  for (; i < n; ++i) tail += load1<K>(w + E * i) * x[i];
  return hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + tail;
}

template <FloatKind K>
void gemv_float(const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) y[r] = row_float<K>(w + static_cast<size_t>(r) * row_bytes, x, n);
}

}  // namespace

bool has_kernel_avx2(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

namespace {

// x quantized as format t's rows need it (thread-local storage); nullptr for the float formats.
const Activation* quantize_for(GgmlType t, const float* x, int64_t n) {
  switch (t) {
    case GgmlType::Q4_0:
      return &quantize_activation(x, n, FmtQ4_0::kOffset, false);
    case GgmlType::Q4_1:
      return &quantize_activation(x, n, FmtQ4_1::kOffset, false);
    case GgmlType::Q5_0:
      return &quantize_activation(x, n, FmtQ5_0::kOffset, false);
    case GgmlType::Q5_1:
      return &quantize_activation(x, n, FmtQ5_1::kOffset, false);
    case GgmlType::Q8_0:
      return &quantize_activation(x, n, 0, false);
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      return &quantize_activation(x, n, 0, true);
    case GgmlType::Q6_K:
      return &quantize_activation(x, n, 32, true);
    default:
      return nullptr;
  }
}

// y[r] for rows [0, n_rows): float formats read x, quantized ones a (from quantize_for).
void rows_with(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, const Activation* a,
               int64_t n, float* y) {
  switch (t) {
    case GgmlType::F32:
      return gemv_float<FloatKind::F32>(w, row_bytes, n_rows, x, n, y);
    case GgmlType::F16:
      return gemv_float<FloatKind::F16>(w, row_bytes, n_rows, x, n, y);
    case GgmlType::BF16:
      return gemv_float<FloatKind::BF16>(w, row_bytes, n_rows, x, n, y);
    case GgmlType::Q4_0:
      return gemv_blocks<FmtQ4_0>(w, row_bytes, n_rows, *a, n, y);
    case GgmlType::Q4_1:
      return gemv_blocks<FmtQ4_1>(w, row_bytes, n_rows, *a, n, y);
    case GgmlType::Q5_0:
      return gemv_blocks<FmtQ5_0>(w, row_bytes, n_rows, *a, n, y);
    case GgmlType::Q5_1:
      return gemv_blocks<FmtQ5_1>(w, row_bytes, n_rows, *a, n, y);
    case GgmlType::Q8_0:
      for (int64_t r = 0; r < n_rows; ++r) y[r] = row_q8_0(w + static_cast<size_t>(r) * row_bytes, n / 32, *a);
      return;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const bool five = t == GgmlType::Q5_K;
      for (int64_t r = 0; r < n_rows; ++r) {
        const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
        y[r] = five ? row_q45_K<true>(row, n / 256, *a) : row_q45_K<false>(row, n / 256, *a);
      }
      return;
    }
    case GgmlType::Q6_K:
      for (int64_t r = 0; r < n_rows; ++r) y[r] = row_q6_K(w + static_cast<size_t>(r) * row_bytes, n / 256, *a);
      return;
    default:
      return;
  }
}

}  // namespace

bool gemv_rows_avx2(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n,
                    float* y) {
  if (!has_kernel_avx2(t)) return false;
  rows_with(t, w, row_bytes, n_rows, x, quantize_for(t, x, n), n, y);
  return true;
}

bool gemv_tokens_avx2(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n_tokens,
                      int64_t n, float* y, int64_t ld_y) {
  if (!has_kernel_avx2(t)) return false;
  thread_local std::vector<Activation> acts;
  const bool quantized = quantize_tokens(
      acts, [&](const float* xk) { return quantize_for(t, xk, n); }, x, n_tokens, n);
  gemv_tokens_tiled(
      acts, quantized,
      [&](const uint8_t* wt, int64_t nr, const float* xk, const Activation* a, float* yk) {
        rows_with(t, wt, row_bytes, nr, xk, a, n, yk);
      },
      w, row_bytes, n_rows, x, n_tokens, n, y, ld_y);
  return true;
}

}  // namespace cvq::detail

#else  // not compiled for AVX2: no kernels

namespace cvq::detail {
bool has_kernel_avx2(GgmlType) { return false; }
bool gemv_rows_avx2(GgmlType, const uint8_t*, size_t, int64_t, const float*, int64_t, float*) { return false; }
bool gemv_tokens_avx2(GgmlType, const uint8_t*, size_t, int64_t, const float*, int64_t, int64_t, float*, int64_t) {
  return false;
}
}  // namespace cvq::detail

#endif
