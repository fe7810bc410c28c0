#include "kernels/cpu/kivi_attention.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"

namespace cvq {
namespace {

inline uint32_t code_at(const uint32_t* words, int j, int bits) {
  const int per = 32 / bits;
  return (words[j / per] >> (bits * (j % per))) & ((1u << bits) - 1u);
}

// Reference: the same factorization as the SIMD kernels, one token at a time.
void scores_scalar(const KiviKeyView& k, const float* q, int rows, float scale, int64_t t0, int64_t t1, float* scores,
                   int64_t ld) {
  std::vector<float> qs(static_cast<size_t>(k.d)), bias(static_cast<size_t>(rows));
  for (int64_t g = t0 / k.group; g * k.group < t1; ++g) {
    const int64_t gs = g * k.group;
    const int j0 = static_cast<int>(std::max(t0, gs) - gs), j1 = static_cast<int>(std::min(t1, gs + k.group) - gs);
    const uint32_t* cw = k.codes + g * k.chan_stride * k.words;
    const uint16_t* sc = k.scale + g * k.chan_stride;
    const uint16_t* zp = k.zero + g * k.chan_stride;
    for (int r = 0; r < rows; ++r) {
      const float* qr = q + static_cast<int64_t>(r) * k.d;
      float b = 0.0f;
      for (int c = 0; c < k.d; ++c) {
        qs[c] = qr[c] * fp16_to_float(sc[c]);
        b += qr[c] * fp16_to_float(zp[c]);
      }
      for (int j = j0; j < j1; ++j) {
        float acc = b;
        for (int c = 0; c < k.d; ++c)
          acc += qs[c] * static_cast<float>(code_at(cw + static_cast<int64_t>(c) * k.words, j, k.bits));
        scores[r * ld + (gs + j - t0)] = scale * acc;
      }
    }
  }
}

void values_scalar(const KiviValueView& v, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1, float* out) {
  const int n_groups = v.d / v.group;
  for (int64_t t = t0; t < t1; ++t) {
    const uint32_t* cw = v.codes + t * v.token_words;
    const uint16_t* sc = v.scale + t * v.token_groups;
    const uint16_t* zp = v.zero + t * v.token_groups;
    for (int r = 0; r < rows; ++r) {
      const float w = p[r * ld + (t - t0)];
      if (w == 0.0f) continue;
      float* o = out + static_cast<int64_t>(r) * v.d;
      for (int j = 0; j < n_groups; ++j) {
        const float ws = w * fp16_to_float(sc[j]), wz = w * fp16_to_float(zp[j]);
        const uint32_t* gw = cw + static_cast<int64_t>(j) * v.words;
        for (int c = 0; c < v.group; ++c) o[j * v.group + c] += ws * static_cast<float>(code_at(gw, c, v.bits)) + wz;
      }
    }
  }
}

void require(SimdLevel level) {
  if (!cpu_supports(level)) throw Error(std::string("kivi attention: this CPU lacks ") + simd_level_name(level));
}

}  // namespace

void kivi_scores_at(SimdLevel level, const KiviKeyView& k, const float* q, int rows, float scale, int64_t t0,
                    int64_t t1, float* scores, int64_t ld) {
  require(level);
  if (t1 <= t0) return;
  if (level == SimdLevel::Avx512 && detail::kivi_scores_avx512(k, q, rows, scale, t0, t1, scores, ld)) return;
  scores_scalar(k, q, rows, scale, t0, t1, scores, ld);
}

void kivi_values_at(SimdLevel level, const KiviValueView& v, const float* p, int64_t ld, int rows, int64_t t0,
                    int64_t t1, float* out) {
  require(level);
  if (t1 <= t0) return;
  if (level == SimdLevel::Avx512 && detail::kivi_values_avx512(v, p, ld, rows, t0, t1, out)) return;
  values_scalar(v, p, ld, rows, t0, t1, out);
}

void kivi_scores(const KiviKeyView& k, const float* q, int rows, float scale, int64_t t0, int64_t t1, float* scores,
                 int64_t ld) {
  kivi_scores_at(active_simd_level(), k, q, rows, scale, t0, t1, scores, ld);
}

void kivi_values(const KiviValueView& v, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1, float* out) {
  kivi_values_at(active_simd_level(), v, p, ld, rows, t0, t1, out);
}

}  // namespace cvq
