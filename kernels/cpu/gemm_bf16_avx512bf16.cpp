// AVX-512 BF16 kernel of gemm_bf16 (kernels/cpu/gemm_bf16.h): register tiles of up to 6 tokens × 64
// rows (24 fp32 accumulators), one vdpbf16ps per (token, 16 rows, K-pair).
#include <algorithm>
#include <cstring>

#include <vector>

#include "core/fp16.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/simd_avx512.h"

namespace cvq::detail {
namespace {

constexpr int kMaxTokens = 6;
constexpr int kMaxGroups = 4;

template <int MR, int NG>
void micro_tile(const uint16_t* x, int64_t K, const uint16_t* w, int64_t group_stride, float* y, int64_t ldy,
                int last_group_rows) {
  __m512 acc[MR][NG];
  for (int m = 0; m < MR; ++m)
    for (int g = 0; g < NG; ++g) acc[m][g] = _mm512_setzero_ps();
  for (int64_t p = 0; p < K / 2; ++p) {
    __m512bh b[NG];
    for (int g = 0; g < NG; ++g) b[g] = (__m512bh)_mm512_loadu_si512(w + g * group_stride + p * 2 * kBf16GroupRows);
    for (int m = 0; m < MR; ++m) {
      int32_t pair;
      std::memcpy(&pair, x + m * K + 2 * p, sizeof(pair));
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      for (int g = 0; g < NG; ++g) acc[m][g] = _mm512_dpbf16_ps(acc[m][g], a, b[g]);
    }
  }
  const __mmask16 last = static_cast<__mmask16>((1u << last_group_rows) - 1u);
  for (int m = 0; m < MR; ++m) {
    for (int g = 0; g < NG; ++g) {
      float* dst = y + m * ldy + g * kBf16GroupRows;
      if (g == NG - 1 && last_group_rows < kBf16GroupRows)
        _mm512_mask_storeu_ps(dst, last, acc[m][g]);
      else
        _mm512_storeu_ps(dst, acc[m][g]);
    }
  }
}

using MicroFn = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, float*, int64_t, int);

template <int MR>
MicroFn pick_groups(int ng) {
  switch (ng) {
    case 1:
      return micro_tile<MR, 1>;
    case 2:
      return micro_tile<MR, 2>;
    case 3:
      return micro_tile<MR, 3>;
    default:
      return micro_tile<MR, 4>;
  }
}

MicroFn pick(int mr, int ng) {
  switch (mr) {
    case 1:
      return pick_groups<1>(ng);
    case 2:
      return pick_groups<2>(ng);
    case 3:
      return pick_groups<3>(ng);
    case 4:
      return pick_groups<4>(ng);
    case 5:
      return pick_groups<5>(ng);
    default:
      return pick_groups<6>(ng);
  }
}

}  // namespace

void convert_rows_bf16_avx512bf16(const float* x, int64_t ldx, int64_t K, int64_t t0, int64_t t1, uint16_t* out) {
  for (int64_t t = t0; t < t1; ++t) {
    const float* src = x + t * ldx;
    uint16_t* dst = out + t * K;
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
      _mm512_storeu_si512(dst + k, (__m512i)v);
    }
    for (; k < K; ++k) dst[k] = float_to_bf16(src[k]);
  }
}

void pack_bf16_group_avx512bf16(const float* w, int64_t ldw, int n_valid, int64_t K, uint16_t* dst) {
  thread_local std::vector<uint16_t> rows;  // the group's rows as bf16, row-major [16 x K]
  rows.assign(static_cast<size_t>(kBf16GroupRows * K), 0);
  convert_rows_bf16_avx512bf16(w, ldw, K, 0, n_valid, rows.data());
  const __m512i row_starts = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                _mm512_set1_epi32(static_cast<int>(K / 2)));
  const int* base = reinterpret_cast<const int*>(rows.data());
  for (int64_t p = 0; p < K / 2; ++p) {
    const __m512i pairs =
        _mm512_i32gather_epi32(_mm512_add_epi32(row_starts, _mm512_set1_epi32(static_cast<int>(p))), base, 4);
    _mm512_storeu_si512(dst + p * 2 * kBf16GroupRows, pairs);
  }
}

void gemm_bf16_avx512bf16(const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed, int64_t group_stride,
                          int64_t n_rows, float* y, int64_t ldy) {
  const int64_t n_groups = (n_rows + kBf16GroupRows - 1) / kBf16GroupRows;
  for (int64_t g0 = 0; g0 < n_groups; g0 += kMaxGroups) {
    const int ng = static_cast<int>(std::min<int64_t>(kMaxGroups, n_groups - g0));
    const int64_t rows_left = n_rows - (g0 + ng - 1) * kBf16GroupRows;
    const int last_rows = static_cast<int>(std::min<int64_t>(kBf16GroupRows, rows_left));
    const uint16_t* w = w_packed + g0 * group_stride;
    for (int64_t t0 = 0; t0 < T; t0 += kMaxTokens) {
      const int mr = static_cast<int>(std::min<int64_t>(kMaxTokens, T - t0));
      pick(mr, ng)(x + t0 * K, K, w, group_stride, y + t0 * ldy + g0 * kBf16GroupRows, ldy, last_rows);
    }
  }
}

}  // namespace cvq::detail
