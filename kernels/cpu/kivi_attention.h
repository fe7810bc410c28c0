#pragma once
// KIVI fused attention kernels: dequantization folded into the score dot products and into the
// value accumulation, per KV head and token range (see src/kv/kivi_cache.h for the storage).
//
// Keys (per-channel groups of G tokens; group g, channel c: codes q, fp16 scale s, fp16 zero z):
//   q_r . k^_t = sum_c (q_r[c] s[g][c]) code[g][c][t] + sum_c q_r[c] z[g][c]
// so each group costs one pass of d multiplies per row, then every token costs only unpack + FMA.
// Values (per-token groups of G channels):
//   sum_t p_t v^_t[c] = sum_t (p_t s[t][grp]) code[t][c] + sum_t p_t z[t][grp].
#include <cstdint>

#include "kernels/cpu/cpu_features.h"

namespace cvq {

struct KiviKeyView {
  int bits = 2;                     // b
  int group = 32;                   // G tokens per group
  int words = 2;                    // 32-bit words per (group, channel): ceil(G*b/32)
  int d = 0;                        // channels of this head
  const uint32_t* codes = nullptr;  // group g, head channel c: codes + (g*chan_stride + c)*words
  const uint16_t* scale = nullptr;  // group g, head channel c: scale[g*chan_stride + c] (fp16)
  const uint16_t* zero = nullptr;
  int64_t chan_stride = 0;  // channels per group row (all heads: kv_dim)
};

struct KiviValueView {
  int bits = 2;
  int group = 32;  // G channels per group (divides d)
  int words = 2;   // words per (token, group): ceil(G*b/32)
  int d = 0;
  const uint32_t* codes = nullptr;  // token t, head group j: codes + t*token_words + j*words
  const uint16_t* scale = nullptr;  // token t, head group j: scale[t*token_groups + j]
  const uint16_t* zero = nullptr;
  int64_t token_words = 0;
  int64_t token_groups = 0;
};

// scores[r*ld + (t - t0)] = scale * dot(q_r, k^_t), t in [t0, t1); q rows contiguous (d floats each).
void kivi_scores(const KiviKeyView& k, const float* q, int rows, float scale, int64_t t0, int64_t t1, float* scores,
                 int64_t ld);
// out[r*d + c] += sum_{t in [t0,t1)} p[r*ld + (t - t0)] * v^_t[c]
void kivi_values(const KiviValueView& v, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1, float* out);

void kivi_scores_at(SimdLevel level, const KiviKeyView& k, const float* q, int rows, float scale, int64_t t0,
                    int64_t t1, float* scores, int64_t ld);
void kivi_values_at(SimdLevel level, const KiviValueView& v, const float* p, int64_t ld, int rows, int64_t t0,
                    int64_t t1, float* out);

namespace detail {
// Return false (computing nothing) for shapes without a SIMD kernel.
bool kivi_scores_avx512(const KiviKeyView& k, const float* q, int rows, float scale, int64_t t0, int64_t t1,
                        float* scores, int64_t ld);
bool kivi_values_avx512(const KiviValueView& v, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1,
                        float* out);
}  // namespace detail

}  // namespace cvq
