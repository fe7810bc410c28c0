#include "kernels/cpu/commvq_assign.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"

namespace cvq {
namespace {

bool use_avx512(SimdLevel level) {
  if (!cpu_supports(level))
    throw Error(std::string("commvq kernels: this CPU does not support ") + simd_level_name(level));
  return level == SimdLevel::Avx512 && detail::commvq_assign_avx512_compiled();
}

CommvqArgmin pair_sum_argmin_scalar(const float* gfull, const float* p, const float* q, float offset, float* out) {
  CommvqArgmin best{0, std::numeric_limits<float>::infinity()};
  for (int a = 0; a < kCommvqSubCodes; ++a) {
    const float pa = p[a] + offset;
    const float* g = gfull + a * kCommvqSubCodes;
    for (int b = 0; b < kCommvqSubCodes; ++b) {
      const float v = (g[b] + q[b]) + pa;  // the association the SIMD path uses
      if (out) out[a * kCommvqSubCodes + b] = v;
      if (v < best.value) best = {a * kCommvqSubCodes + b, v};
    }
  }
  return best;
}

int soft_accumulate_scalar(const float* dist2, float dmin2, float tau, float cutoff, float* counts, float* wa,
                           float* wb, float* dense_out, CommvqSoftScratch& s) {
  const float dmin = std::sqrt(std::max(dmin2, 0.0f));
  const float lim = dmin + cutoff * tau;
  const float t2 = std::max(lim * lim, dmin2);
  int n = 0;
  for (int c = 0; c < kCommvqCodewords; ++c) {
    if (dist2[c] <= t2) {
      s.idx[n] = c;
      s.w[n] = dist2[c];
      ++n;
    }
  }
  if (n == 0) {  // only with NaN input or a dmin2 that is not the minimum: fall back to the argmin
    s.idx[0] = commvq_argmin4096(dist2).index;
    s.w[0] = std::max(dmin2, 0.0f);
    n = 1;
  }
  const float inv_tau = 1.0f / tau;
  float z = 0.0f;
  for (int k = 0; k < n; ++k) {
    const float e = std::exp((dmin - std::sqrt(std::max(s.w[k], 0.0f))) * inv_tau);
    s.w[k] = e;
    z += e;
  }
  const float inv_z = 1.0f / z;
  if (dense_out) {
    for (int c = 0; c < kCommvqCodewords; ++c) dense_out[c] = 0.0f;
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

}  // namespace

void commvq_row_bounds(const float* gfull, float* bound) {
  constexpr int S = kCommvqSubCodes;
  float gmax = 0.0f, nmax = 0.0f;
  for (int c = 0; c < kCommvqCodewords; ++c) gmax = std::max(gmax, std::fabs(gfull[c]));
  for (int b = 0; b < S; ++b) {
    bound[S + b] = 0.5f * gfull[b * S + b];
    nmax = std::max(nmax, std::fabs(bound[S + b]));
  }
  for (int k = 2 * S; k < kCommvqBoundFloats; ++k) bound[k] = 0.0f;
  bound[2 * S] = gmax + nmax;
  for (int a = 0; a < S; ++a) {
    double m = std::numeric_limits<double>::infinity();
    for (int b = 0; b < S; ++b) m = std::min(m, static_cast<double>(gfull[a * S + b]) - bound[S + b]);
    // Round down, and then one more step: the kernels' sums are float.
    bound[a] = std::nextafter(std::nextafter(static_cast<float>(m), -std::numeric_limits<float>::infinity()),
                              -std::numeric_limits<float>::infinity());
  }
}

CommvqArgmin commvq_pair_sum_argmin_at(SimdLevel level, const float* gfull, const float* p, const float* q,
                                       float offset, float* out, const float* bound) {
  if (use_avx512(level)) return detail::commvq_pair_sum_argmin_avx512(gfull, p, q, offset, out, bound);
  return pair_sum_argmin_scalar(gfull, p, q, offset, out);
}

CommvqArgmin commvq_pair_sum_argmin(const float* gfull, const float* p, const float* q, float offset, float* out,
                                    const float* bound) {
  static const bool avx512 = use_avx512(active_simd_level());
  if (avx512) return detail::commvq_pair_sum_argmin_avx512(gfull, p, q, offset, out, bound);
  return pair_sum_argmin_scalar(gfull, p, q, offset, out);
}

CommvqArgmin commvq_argmin4096(const float* v) {
  static const bool avx512 = use_avx512(active_simd_level());
  if (avx512) return detail::commvq_argmin4096_avx512(v);
  CommvqArgmin best{0, std::numeric_limits<float>::infinity()};
  for (int c = 0; c < kCommvqCodewords; ++c) {
    if (v[c] < best.value) best = {c, v[c]};
  }
  return best;
}

int commvq_soft_accumulate_at(SimdLevel level, const float* dist2, float dmin2, float tau, float cutoff, float* counts,
                              float* wa, float* wb, float* dense_out, CommvqSoftScratch& scratch) {
  if (use_avx512(level)) {
    return detail::commvq_soft_accumulate_avx512(dist2, dmin2, tau, cutoff, counts, wa, wb, dense_out, scratch);
  }
  return soft_accumulate_scalar(dist2, dmin2, tau, cutoff, counts, wa, wb, dense_out, scratch);
}

int commvq_soft_accumulate(const float* dist2, float dmin2, float tau, float cutoff, float* counts, float* wa,
                           float* wb, float* dense_out, CommvqSoftScratch& scratch) {
  static const bool avx512 = use_avx512(active_simd_level());
  if (avx512) {
    return detail::commvq_soft_accumulate_avx512(dist2, dmin2, tau, cutoff, counts, wa, wb, dense_out, scratch);
  }
  return soft_accumulate_scalar(dist2, dmin2, tau, cutoff, counts, wa, wb, dense_out, scratch);
}

CommvqArgmin commvq_pair_soft_assign_at(SimdLevel level, const float* gfull, const float* p, const float* q,
                                        float offset, float tau, float cutoff, float* counts, float* wa, float* wb,
                                        CommvqSoftScratch& scratch, const float* bound) {
  if (use_avx512(level)) {
    return detail::commvq_pair_soft_assign_avx512(gfull, p, q, offset, tau, cutoff, counts, wa, wb, scratch, bound);
  }
  const CommvqArgmin am = pair_sum_argmin_scalar(gfull, p, q, offset, scratch.dist);
  soft_accumulate_scalar(scratch.dist, am.value, tau, cutoff, counts, wa, wb, nullptr, scratch);
  return am;
}

CommvqArgmin commvq_pair_soft_assign(const float* gfull, const float* p, const float* q, float offset, float tau,
                                     float cutoff, float* counts, float* wa, float* wb, CommvqSoftScratch& scratch,
                                     const float* bound) {
  static const bool avx512 = use_avx512(active_simd_level());
  if (avx512) {
    return detail::commvq_pair_soft_assign_avx512(gfull, p, q, offset, tau, cutoff, counts, wa, wb, scratch, bound);
  }
  return commvq_pair_soft_assign_at(SimdLevel::Scalar, gfull, p, q, offset, tau, cutoff, counts, wa, wb, scratch);
}

}  // namespace cvq
