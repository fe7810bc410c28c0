// AVX-512 (F/BW/VL/DQ/VNNI) gemv kernels. Compiled with -mavx512* by CMake; only called after
// cpu_supports(SimdLevel::Avx512). See quant_dot.h for the numerics.
//
// Quantized rows: x is quantized once per call to int8 blocks of 32 (thread-local buffer), laid out
// to match how the weight bytes unpack into a 512-bit register, so each pair of 32-element blocks
// (or 64 elements of a K super-block) is one vpdpbusd: weights as unsigned bytes (q4: 0..15,
// q5: 0..31, q6_K: 0..63, q8_0: q+128) times signed activations. The weight offset (8, 16, 32, 128)
// is removed exactly by starting the accumulator at -offset*sum(q_x) per lane ("seed"). Lanes are
// then converted to float and scaled per lane by d_w*d_x, so a row needs one horizontal sum.
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_dot.h"
#include "kernels/cpu/quant_dot_tokens.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__) && defined(__F16C__) && defined(__FMA__)

// GCC 12's AVX-512 intrinsics use self-initialized "undefined" vectors, which -Wmaybe-uninitialized
// reports once inlined (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

namespace cvq::detail {
namespace {

// ---------------------------------------------------------------- activation quantization

enum class Layout {
  Natural,  // q in element order
  Pair16,   // per pair of blocks a, b: a[0..15] b[0..15] a[16..31] b[16..31] (q4/q5 nibble order)
};
enum class ScaleLayout {
  Interleaved,  // per block: d, s
  PerSuper,     // per 256 elements: d[8], s[8]
};

struct Activation {
  std::vector<int8_t> q;      // quantized x
  std::vector<int32_t> seed;  // -offset * (sum of 4 consecutive q) per dpbusd lane
  std::vector<float> d, s;    // per block of 32: d = amax/127 and s = d*sum(q)
  std::vector<float> scales;  // d and s arranged per ScaleLayout
};

thread_local Activation t_act;

// Quantizes 32 floats to int8 with d = amax/127; returns the sum of the codes.
inline int32_t quantize_block32(const float* x, int8_t* q, float* d_out) {
  const __m512 a = _mm512_loadu_ps(x);
  const __m512 b = _mm512_loadu_ps(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
  if (!(amax >= 1e-30f)) {  // all (near) zero: a scale this small would overflow 127/amax
    std::memset(q, 0, 32);
    *d_out = 0.0f;
    return 0;
  }
  const __m512 id = _mm512_set1_ps(127.0f / amax);
  const __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, id));  // round to nearest even
  const __m512i qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, id));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(qa));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtepi32_epi8(qb));
  *d_out = amax / 127.0f;
  return _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
}

// n must be a multiple of 32 (of 256 for ScaleLayout::PerSuper). With pad_even, an odd block count
// gets one zero block appended.
const Activation& quantize_activation(const float* x, int64_t n, Layout layout, bool pad_even, int offset,
                                      ScaleLayout scale_layout) {
  Activation& a = t_act;
  const int64_t nb = n / 32;
  const int64_t nbp = pad_even ? (nb + 1) & ~int64_t{1} : nb;
  a.q.resize(static_cast<size_t>(nbp * 32));
  a.d.resize(static_cast<size_t>(nbp));
  a.s.resize(static_cast<size_t>(nbp));
  a.scales.resize(static_cast<size_t>(nbp * 2));
  float* d = a.d.data();
  float* s = a.s.data();
  alignas(64) int8_t tmp[32];
  for (int64_t b = 0; b < nbp; ++b) {
    int32_t sum = 0;
    float db = 0.0f;
    if (b < nb) {
      sum = quantize_block32(x + 32 * b, tmp, &db);
    } else {
      std::memset(tmp, 0, sizeof(tmp));
    }
    d[b] = db;
    s[b] = db * static_cast<float>(sum);
    if (layout == Layout::Pair16) {
      int8_t* dst = a.q.data() + 64 * (b / 2) + 16 * (b & 1);
      std::memcpy(dst, tmp, 16);
      std::memcpy(dst + 32, tmp + 16, 16);
    } else {
      std::memcpy(a.q.data() + 32 * b, tmp, 32);
    }
  }
  float* out = a.scales.data();
  if (scale_layout == ScaleLayout::Interleaved) {
    for (int64_t b = 0; b < nbp; ++b) {
      out[2 * b] = d[b];
      out[2 * b + 1] = s[b];
    }
  } else {
    for (int64_t sb = 0; sb < nbp / 8; ++sb) {
      for (int k = 0; k < 8; ++k) {
        out[16 * sb + k] = d[8 * sb + k];
        out[16 * sb + 8 + k] = s[8 * sb + k];
      }
    }
  }
  if (offset != 0) {
    a.seed.resize(static_cast<size_t>(nbp * 8));
    const __m256i off = _mm256_set1_epi8(static_cast<char>(offset));
    for (int64_t b = 0; b < nbp; ++b) {
      const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + 32 * b));
      const __m256i sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), off, qv);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.seed.data() + 8 * b),
                          _mm256_sub_epi32(_mm256_setzero_si256(), sums));
    }
  }
  return a;
}

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---------------------------------------------------------------- 32-element block formats

struct FmtQ4_0 {
  static constexpr int kBytes = 18, kQs = 2, kQh = -1, kOffset = 8;
  static constexpr bool kMin = false, kEight = false;
};
struct FmtQ4_1 {
  static constexpr int kBytes = 20, kQs = 4, kQh = -1, kOffset = 0;
  static constexpr bool kMin = true, kEight = false;
};
struct FmtQ5_0 {
  static constexpr int kBytes = 22, kQs = 6, kQh = 2, kOffset = 16;
  static constexpr bool kMin = false, kEight = false;
};
struct FmtQ5_1 {
  static constexpr int kBytes = 24, kQs = 8, kQh = 4, kOffset = 0;
  static constexpr bool kMin = true, kEight = false;
};
struct FmtQ8_0 {
  static constexpr int kBytes = 34, kQs = 2, kQh = -1, kOffset = 128;
  static constexpr bool kMin = false, kEight = true;
};

// Unsigned weight codes of blocks a and b, in the activation's layout.
template <class F>
inline __m512i pair_codes(const uint8_t* ba, const uint8_t* bb) {
  if constexpr (F::kEight) {
    const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ba + F::kQs));
    const __m256i qb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bb + F::kQs));
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);
    return _mm512_xor_si512(z, _mm512_set1_epi8(static_cast<char>(0x80)));
  } else {
    const __m128i qa = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ba + F::kQs));
    const __m128i qb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bb + F::kQs));
    const __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(qa), qb, 1);
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1);
    z = _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
    if constexpr (F::kQh >= 0) {
      const uint32_t ha = load_u32(ba + F::kQh);
      const uint32_t hb = load_u32(bb + F::kQh);
      const uint64_t mask = static_cast<uint64_t>(ha & 0xFFFFu) | (static_cast<uint64_t>(hb & 0xFFFFu) << 16) |
                            (static_cast<uint64_t>(ha >> 16) << 32) | (static_cast<uint64_t>(hb >> 16) << 48);
      z = _mm512_mask_add_epi8(z, static_cast<__mmask64>(mask), z, _mm512_set1_epi8(16));
    }
    return z;
  }
}

// [d_a, m_a, d_b, m_b] of blocks a and b (the m terms are 0 for formats without a min).
template <class F>
inline __m128 pair_weight_scales(const uint8_t* ba, const uint8_t* bb) {
  __m128i h;
  if constexpr (F::kMin) {
    h = _mm_insert_epi32(_mm_cvtsi32_si128(static_cast<int>(load_u32(ba))), static_cast<int>(load_u32(bb)), 1);
  } else {
    h = _mm_insert_epi16(_mm_cvtsi32_si128(load_u16(ba)), load_u16(bb), 2);
  }
  return _mm_cvtph_ps(h);
}

// [d_a*dx_a, m_a*s_a, d_b*dx_b, m_b*s_b].
template <class F>
inline __m128 pair_scales(const uint8_t* ba, const uint8_t* bb, __m128 dsx) {
  return _mm_mul_ps(pair_weight_scales<F>(ba, bb), dsx);
}

// Which lane of pair_scales' result scales each int32 lane of a pair's dot product.
template <class F>
inline __m512i pair_scale_index() {
  return F::kEight ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2)
                   : _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2);
}

// R rows at once (they share the activation loads); out[r] = dot(row r, x).
template <class F, int R>
void rows_pairs(const uint8_t* row0, size_t row_bytes, int64_t nb, const Activation& a, float* out) {
  const __m512i idx = pair_scale_index<F>();
  constexpr int64_t B = F::kBytes;
  const int8_t* q = a.q.data();
  const int32_t* seed = a.seed.data();
  const float* ds = a.scales.data();
  __m512 acc[2][R];  // two independent chains per row (even / odd pairs)
  __m128 macc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    acc[0][r] = acc[1][r] = _mm512_setzero_ps();
    macc[r] = _mm_setzero_ps();
  }
  // One pair of blocks of every row; block_a(r) is the first block of the pair in row r.
  auto step = [&](auto block_a, int64_t p, int chain) {
    const __m512i xq = _mm512_loadu_si512(q + 64 * p);
    __m512i init = _mm512_setzero_si512();
    if constexpr (F::kOffset != 0) init = _mm512_loadu_si512(seed + 16 * p);
    const __m128 dsx = _mm_loadu_ps(ds + 4 * p);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* ba = block_a(r);
      const __m512i dot = _mm512_dpbusd_epi32(init, pair_codes<F>(ba, ba + B), xq);
      const __m128 f = pair_scales<F>(ba, ba + B, dsx);
      if constexpr (F::kMin) macc[r] = _mm_add_ps(macc[r], f);
      acc[chain][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(idx, _mm512_zextps128_ps512(f)),
                                      acc[chain][r]);
    }
  };
  const int64_t np = nb / 2;
  int64_t p = 0;
  for (; p + 2 <= np; p += 2) {
    step([&](int r) { return row0 + r * row_bytes + 2 * p * B; }, p, 0);
    step([&](int r) { return row0 + r * row_bytes + 2 * (p + 1) * B; }, p + 1, 1);
  }
  if (p < np) step([&](int r) { return row0 + r * row_bytes + 2 * p * B; }, p, 0);
  if (nb & 1) {  // last block alone: pair it with a zero block (the activation is zero-padded too)
    alignas(64) uint8_t tail[R][2 * B] = {};
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) std::memcpy(tail[r], row0 + r * row_bytes + (nb - 1) * B, B);
    step([&](int r) { return static_cast<const uint8_t*>(tail[r]); }, np, 1);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float v = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][r], acc[1][r]));
    if constexpr (F::kMin) {
      const __m128 m = _mm_add_ps(macc[r], _mm_movehl_ps(macc[r], macc[r]));  // lane 1: m_a*s_a + m_b*s_b
      v += _mm_cvtss_f32(_mm_shuffle_ps(m, m, 1));
    }
    out[r] = v;
  }
}

// Batched decode: up to kGroupTokens tokens go through a row together, each weight block unpacked once
// for all of them. The token count is a template parameter (with_token_count) so the per-token loops
// unroll and every accumulator stays in a register (2-3 per token must fit the 32 zmm registers).
constexpr int kGroupTokens = 8;
constexpr int kGroupTokensK = 4;

// Raw pointers into each token's Activation (kept out of the inner loops' loads).
struct TokenInputs {
  const int8_t* q[kGroupTokens];
  const int32_t* seed[kGroupTokens];
  const float* scales[kGroupTokens];  // Activation::scales
};

TokenInputs one_token(const Activation& a) {
  TokenInputs in{};
  in.q[0] = a.q.data();
  in.seed[0] = a.seed.data();
  in.scales[0] = a.scales.data();
  return in;
}

// fn(std::integral_constant<int, nt>{}) for nt in [1, kMax].
template <int kMax, int N = 1, class Fn>
void with_token_count(int nt, Fn&& fn) {
  if constexpr (N < kMax) {
    if (nt == N) return fn(std::integral_constant<int, N>{});
    return with_token_count<kMax, N + 1>(nt, fn);
  } else {
    fn(std::integral_constant<int, N>{});
  }
}

// y[k*ld_y + r] for every row r and token k, the tokens in groups of G: kernel(NT, row, inputs, out)
// computes one row for one group. Rows outside, groups inside, so a row read from memory serves every
// group from L1. scales_of(a) picks the scales a kernel reads.
template <int G, class Kernel, class ScalesOf>
void gemv_token_groups(const uint8_t* w, size_t row_bytes, int64_t n_rows, const std::vector<Activation>& acts,
                       int64_t n_tokens, float* y, int64_t ld_y, const ScalesOf& scales_of, const Kernel& kernel) {
  const int64_t n_groups = (n_tokens + G - 1) / G, n_full = n_tokens / G;
  const int rest = static_cast<int>(n_tokens - n_full * G);
  std::vector<TokenInputs> in(static_cast<size_t>(n_groups));
  for (int64_t k = 0; k < n_tokens; ++k) {
    const Activation& a = acts[static_cast<size_t>(k)];
    TokenInputs& g = in[static_cast<size_t>(k / G)];
    g.q[k % G] = a.q.data();
    g.seed[k % G] = a.seed.data();
    g.scales[k % G] = scales_of(a);
  }
  float o[G];
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
    for (int64_t g = 0; g < n_full; ++g) {
      kernel(std::integral_constant<int, G>{}, row, in[static_cast<size_t>(g)], o);
      for (int k = 0; k < G; ++k) y[(g * G + k) * ld_y + r] = o[k];
    }
    if (rest > 0) {
      with_token_count<G>(rest, [&](auto NT) { kernel(NT, row, in[static_cast<size_t>(n_full)], o); });
      for (int k = 0; k < rest; ++k) y[(n_full * G + k) * ld_y + r] = o[k];
    }
  }
}

// One row of a 32-element block format against NT tokens; each token's arithmetic is rows_pairs' for
// that row, in the same order, so the results equal it bit for bit.
template <class F, int NT>
void row_pairs_tokens(const uint8_t* row, int64_t nb, const TokenInputs& in, float* out) {
  const __m512i idx = pair_scale_index<F>();
  constexpr int64_t B = F::kBytes;
  __m512 acc[2][NT];
  __m128 macc[NT];
#pragma GCC unroll 8
  for (int k = 0; k < NT; ++k) {
    acc[0][k] = acc[1][k] = _mm512_setzero_ps();
    macc[k] = _mm_setzero_ps();
  }
  auto step = [&](const uint8_t* ba, int64_t p, int chain) {
    const __m512i codes = pair_codes<F>(ba, ba + B);
    const __m128 wsc = pair_weight_scales<F>(ba, ba + B);
#pragma GCC unroll 8
    for (int k = 0; k < NT; ++k) {
      __m512i init = _mm512_setzero_si512();
      if constexpr (F::kOffset != 0) init = _mm512_loadu_si512(in.seed[k] + 16 * p);
      const __m512i dot = _mm512_dpbusd_epi32(init, codes, _mm512_loadu_si512(in.q[k] + 64 * p));
      const __m128 f = _mm_mul_ps(wsc, _mm_loadu_ps(in.scales[k] + 4 * p));  // pair_scales
      if constexpr (F::kMin) macc[k] = _mm_add_ps(macc[k], f);
      acc[chain][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(idx, _mm512_zextps128_ps512(f)),
                                      acc[chain][k]);
    }
  };
  const int64_t np = nb / 2;
  int64_t p = 0;
  for (; p + 2 <= np; p += 2) {
    step(row + 2 * p * B, p, 0);
    step(row + 2 * (p + 1) * B, p + 1, 1);
  }
  if (p < np) step(row + 2 * p * B, p, 0);
  if (nb & 1) {
    alignas(64) uint8_t tail[2 * B] = {};
    std::memcpy(tail, row + (nb - 1) * B, B);
    step(tail, np, 1);
  }
#pragma GCC unroll 8
  for (int k = 0; k < NT; ++k) {
    float v = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][k], acc[1][k]));
    if constexpr (F::kMin) {
      const __m128 m = _mm_add_ps(macc[k], _mm_movehl_ps(macc[k], macc[k]));
      v += _mm_cvtss_f32(_mm_shuffle_ps(m, m, 1));
    }
    out[k] = v;
  }
}

template <class F>
void gemv_pairs_tokens(const uint8_t* w, size_t row_bytes, int64_t n_rows, const std::vector<Activation>& acts,
                       int64_t n_tokens, int64_t n, float* y, int64_t ld_y) {
  const int64_t nb = n / 32;
  gemv_token_groups<kGroupTokens>(
      w, row_bytes, n_rows, acts, n_tokens, y, ld_y, [](const Activation& a) { return a.scales.data(); },
      [&](auto NT, const uint8_t* row, const TokenInputs& in, float* o) { row_pairs_tokens<F, NT()>(row, nb, in, o); });
}

template <class F>
const Activation& quantize_pairs(const float* x, int64_t n) {
  return quantize_activation(x, n, F::kEight ? Layout::Natural : Layout::Pair16, true, F::kOffset,
                             ScaleLayout::Interleaved);
}

template <class F>
void gemv_pairs(const uint8_t* w, size_t row_bytes, int64_t n_rows, const Activation& a, int64_t n, float* y) {
  const int64_t nb = n / 32;
  // Two rows at a time share the activation loads (~5% faster for the nibble formats); for q8_0
  // it halved the streaming speed from DRAM (measured on Zen 4), so one row at a time there.
  constexpr int R = F::kEight ? 1 : 2;
  int64_t r = 0;
  for (; r + R <= n_rows; r += R) rows_pairs<F, R>(w + static_cast<size_t>(r) * row_bytes, row_bytes, nb, a, y + r);
  for (; r < n_rows; ++r) rows_pairs<F, 1>(w + static_cast<size_t>(r) * row_bytes, row_bytes, nb, a, y + r);
}

// ---------------------------------------------------------------- K super-blocks

// [sc0..7, m0..7] of q4_K / q5_K as floats.
inline __m512 k_scales_mins(const uint8_t* packed) {
  const uint32_t b0 = load_u32(packed), b1 = load_u32(packed + 4), b2 = load_u32(packed + 8);
  const uint32_t sc_lo = b0 & 0x3f3f3f3fu;
  const uint32_t sc_hi = (b2 & 0x0f0f0f0fu) | (((b0 >> 6) & 0x03030303u) << 4);
  const uint32_t m_lo = b1 & 0x3f3f3f3fu;
  const uint32_t m_hi = ((b2 >> 4) & 0x0f0f0f0fu) | (((b1 >> 6) & 0x03030303u) << 4);
  const __m128i v =
      _mm_setr_epi32(static_cast<int>(sc_lo), static_cast<int>(sc_hi), static_cast<int>(m_lo), static_cast<int>(m_hi));
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v));
}

// Dot products of one q4_K / q5_K / q6_K row with the activations of NT tokens. Every weight block
// is unpacked once for all of them (batched decode is bound by the unpacking); each token's arithmetic
// is the same whatever NT, so a batched row equals the single-token one (NT = 1) bit for bit.
template <bool kFive, int NT>
void row_q45_K_tokens(const uint8_t* row, int64_t nsb, const TokenInputs& in, float* out) {
  constexpr int64_t B = kFive ? 176 : 144;
  constexpr int kQs = kFive ? 48 : 16;
  const __m512i idx_dd = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i idx_j[4] = {
      _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
      _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
      _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5),
      _mm512_setr_epi32(6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7),
  };
  const __m512i m0f = _mm512_set1_epi8(0x0F);
  const __m512i m10 = _mm512_set1_epi8(0x10);
  __m512 acc0[NT], acc1[NT], macc[NT];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = macc[t] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* b = row + sb * B;
    const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(load_u32(b))));  // d, dmin
    const __m512 f0 = _mm512_mul_ps(k_scales_mins(b + 4), _mm512_permutexvar_ps(idx_dd, _mm512_zextps128_ps512(dd)));
    __m512i z[4];
    __m512i qhz = _mm512_setzero_si512();
    if constexpr (kFive) {
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
      qhz = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 1), 1);
    }
    for (int j = 0; j < 4; ++j) {
      const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kQs + 32 * j));
      z[j] = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1), m0f);
      if constexpr (kFive) {
        z[j] = _mm512_or_si512(z[j], _mm512_and_si512(_mm512_slli_epi16(qhz, 4), m10));
        qhz = _mm512_srli_epi16(qhz, 2);
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const int8_t* q = in.q[t] + 256 * sb;
      const __m512 f = _mm512_mul_ps(f0, _mm512_loadu_ps(in.scales[t] + 16 * sb));
      macc[t] = _mm512_add_ps(macc[t], f);
      for (int j = 0; j < 4; ++j) {
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), z[j], _mm512_loadu_si512(q + 64 * j));
        __m512& acc = (j & 1) ? acc1[t] : acc0[t];
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(idx_j[j], f), acc);
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    const __m256 mins = _mm512_extractf32x8_ps(macc[t], 1);
    out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t])) - hsum256(mins);
  }
}

template <int NT>
void row_q6_K_tokens(const uint8_t* row, int64_t nsb, const TokenInputs& in, float* out) {
  constexpr int64_t B = 210;
  const __m512i idx_dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i idx_g[4] = {
      _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
      _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7),
      _mm512_setr_epi32(8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11),
      _mm512_setr_epi32(12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15),
  };
  const __m512i m0f = _mm512_set1_epi8(0x0F);
  const __m512i m30 = _mm512_set1_epi8(0x30);
  __m512 acc0[NT], acc1[NT];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* b = row + sb * B;
    const float d = _cvtsh_ss(load_u16(b + 208));
    const __m512 sc =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192))));
    const __m512 scd = _mm512_mul_ps(sc, _mm512_set1_ps(d));
    __m512i lo[2], hi[2];
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(b + 64 * h);
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h));
      const __m512i qhz = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
      lo[h] = _mm512_or_si512(_mm512_and_si512(ql, m0f), _mm512_and_si512(_mm512_slli_epi16(qhz, 4), m30));
      hi[h] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m0f), _mm512_and_si512(qhz, m30));
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const int8_t* q = in.q[t] + 256 * sb;
      const int32_t* seed = in.seed[t] + 64 * sb;
      const __m512 dx = _mm512_permutexvar_ps(idx_dup, _mm512_castps256_ps512(_mm256_loadu_ps(in.scales[t] + 16 * sb)));
      const __m512 s = _mm512_mul_ps(scd, dx);
      for (int h = 0; h < 2; ++h) {
        const __m512i dlo =
            _mm512_dpbusd_epi32(_mm512_loadu_si512(seed + 32 * h), lo[h], _mm512_loadu_si512(q + 128 * h));
        const __m512i dhi =
            _mm512_dpbusd_epi32(_mm512_loadu_si512(seed + 32 * h + 16), hi[h], _mm512_loadu_si512(q + 128 * h + 64));
        acc0[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dlo), _mm512_permutexvar_ps(idx_g[2 * h], s), acc0[t]);
        acc1[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dhi), _mm512_permutexvar_ps(idx_g[2 * h + 1], s), acc1[t]);
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t]));
}

template <bool kFive>
float row_q45_K(const uint8_t* row, int64_t nsb, const Activation& a) {
  float out;
  row_q45_K_tokens<kFive, 1>(row, nsb, one_token(a), &out);
  return out;
}

float row_q6_K(const uint8_t* row, int64_t nsb, const Activation& a) {
  float out;
  row_q6_K_tokens<1>(row, nsb, one_token(a), &out);
  return out;
}

// ---------------------------------------------------------------- float rows

enum class FloatKind { F32, F16, BF16 };

template <FloatKind K>
inline __m512 load16(const uint8_t* p) {
  if constexpr (K == FloatKind::F32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (K == FloatKind::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
}

template <FloatKind K>
inline __m512 load16_masked(const uint8_t* p, __mmask16 m) {
  if constexpr (K == FloatKind::F32) {
    return _mm512_maskz_loadu_ps(m, p);
  } else if constexpr (K == FloatKind::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  } else {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
}

template <FloatKind K>
float row_float(const uint8_t* w, const float* x, int64_t n) {
  constexpr int64_t E = K == FloatKind::F32 ? 4 : 2;  // bytes per element
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  int64_t i = 0;
  // Peel up to 15 elements so the weight loads below are aligned to their width (16*E bytes):
  // split-line 512-bit loads cost ~30% of the streaming bandwidth from DRAM on Zen 4.
  const auto mis = static_cast<int64_t>(reinterpret_cast<uintptr_t>(w) % (16 * E));
  if (mis % E == 0 && mis != 0 && n >= 32) {
    const int64_t head = (16 * E - mis) / E;
    const __mmask16 m = static_cast<__mmask16>((1u << head) - 1u);
    a3 = _mm512_fmadd_ps(load16_masked<K>(w, m), _mm512_maskz_loadu_ps(m, x), a3);
    i = head;
  }
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_fmadd_ps(load16<K>(w + E * i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(load16<K>(w + E * (i + 16)), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(load16<K>(w + E * (i + 32)), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(load16<K>(w + E * (i + 48)), _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(load16<K>(w + E * i), _mm512_loadu_ps(x + i), a0);
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    a1 = _mm512_fmadd_ps(load16_masked<K>(w + E * i, m), _mm512_maskz_loadu_ps(m, x + i), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

template <FloatKind K>
void gemv_float(const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) y[r] = row_float<K>(w + static_cast<size_t>(r) * row_bytes, x, n);
}

}  // namespace

bool has_kernel_avx512(GgmlType t) {
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
      return &quantize_pairs<FmtQ4_0>(x, n);
    case GgmlType::Q4_1:
      return &quantize_pairs<FmtQ4_1>(x, n);
    case GgmlType::Q5_0:
      return &quantize_pairs<FmtQ5_0>(x, n);
    case GgmlType::Q5_1:
      return &quantize_pairs<FmtQ5_1>(x, n);
    case GgmlType::Q8_0:
      return &quantize_pairs<FmtQ8_0>(x, n);
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      return &quantize_activation(x, n, Layout::Natural, false, 0, ScaleLayout::PerSuper);
    case GgmlType::Q6_K:
      return &quantize_activation(x, n, Layout::Natural, false, 32, ScaleLayout::PerSuper);
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
      return gemv_pairs<FmtQ4_0>(w, row_bytes, n_rows, *a, n, y);
    case GgmlType::Q4_1:
      return gemv_pairs<FmtQ4_1>(w, row_bytes, n_rows, *a, n, y);
    case GgmlType::Q5_0:
      return gemv_pairs<FmtQ5_0>(w, row_bytes, n_rows, *a, n, y);
    case GgmlType::Q5_1:
      return gemv_pairs<FmtQ5_1>(w, row_bytes, n_rows, *a, n, y);
    case GgmlType::Q8_0:
      return gemv_pairs<FmtQ8_0>(w, row_bytes, n_rows, *a, n, y);
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

bool gemv_rows_avx512(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n,
                      float* y) {
  if (!has_kernel_avx512(t)) return false;
  rows_with(t, w, row_bytes, n_rows, x, quantize_for(t, x, n), n, y);
  return true;
}

bool gemv_tokens_avx512(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x,
                        int64_t n_tokens, int64_t n, float* y, int64_t ld_y) {
  if (!has_kernel_avx512(t)) return false;
  thread_local std::vector<Activation> acts;
  const bool quantized = quantize_tokens(
      acts, [&](const float* xk) { return quantize_for(t, xk, n); }, x, n_tokens, n);
  if (t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K) {
    const int64_t nsb = n / 256;
    const auto scales = [](const Activation& a) { return a.scales.data(); };
    if (t == GgmlType::Q4_K) {
      gemv_token_groups<kGroupTokensK>(w, row_bytes, n_rows, acts, n_tokens, y, ld_y, scales,
                                       [&](auto NT, const uint8_t* row, const TokenInputs& in, float* o) {
                                         row_q45_K_tokens<false, NT()>(row, nsb, in, o);
                                       });
    } else if (t == GgmlType::Q5_K) {
      gemv_token_groups<kGroupTokensK>(w, row_bytes, n_rows, acts, n_tokens, y, ld_y, scales,
                                       [&](auto NT, const uint8_t* row, const TokenInputs& in, float* o) {
                                         row_q45_K_tokens<true, NT()>(row, nsb, in, o);
                                       });
    } else {
      gemv_token_groups<kGroupTokensK>(w, row_bytes, n_rows, acts, n_tokens, y, ld_y, scales,
                                       [&](auto NT, const uint8_t* row, const TokenInputs& in, float* o) {
                                         row_q6_K_tokens<NT()>(row, nsb, in, o);
                                       });
    }
    return true;
  }
  switch (t) {
    case GgmlType::Q4_0:
      gemv_pairs_tokens<FmtQ4_0>(w, row_bytes, n_rows, acts, n_tokens, n, y, ld_y);
      return true;
    case GgmlType::Q4_1:
      gemv_pairs_tokens<FmtQ4_1>(w, row_bytes, n_rows, acts, n_tokens, n, y, ld_y);
      return true;
    case GgmlType::Q5_0:
      gemv_pairs_tokens<FmtQ5_0>(w, row_bytes, n_rows, acts, n_tokens, n, y, ld_y);
      return true;
    case GgmlType::Q5_1:
      gemv_pairs_tokens<FmtQ5_1>(w, row_bytes, n_rows, acts, n_tokens, n, y, ld_y);
      return true;
    case GgmlType::Q8_0:
      gemv_pairs_tokens<FmtQ8_0>(w, row_bytes, n_rows, acts, n_tokens, n, y, ld_y);
      return true;
    default:
      break;
  }
  gemv_tokens_tiled(
      acts, quantized,
      [&](const uint8_t* wt, int64_t nr, const float* xk, const Activation* a, float* yk) {
        rows_with(t, wt, row_bytes, nr, xk, a, n, yk);
      },
      w, row_bytes, n_rows, x, n_tokens, n, y, ld_y);
  return true;
}

}  // namespace cvq::detail

#else  // not compiled for AVX-512: no kernels (the dispatcher never selects this level then)

namespace cvq::detail {
bool has_kernel_avx512(GgmlType) { return false; }
bool gemv_rows_avx512(GgmlType, const uint8_t*, size_t, int64_t, const float*, int64_t, float*) { return false; }
bool gemv_tokens_avx512(GgmlType, const uint8_t*, size_t, int64_t, const float*, int64_t, int64_t, float*, int64_t) {
  return false;
}
}  // namespace cvq::detail

#endif
