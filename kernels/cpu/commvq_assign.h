#pragma once
// Per-vector kernels of CommVQ key encoding and EM (docs/METHOD.md §3.4, §3.5, §4).
//
// A stage has 4096 codewords c = 64·A + B. With the factorization of docs/METHOD.md §4 the squared distance of a
// vector r to every codeword is
//   dist2[c] = ||r||² + gfull[c] + p[A] + q[B]
// where gfull[c] = nA_A + nB_B + 2·G[A,B] (per stage) and p = −2α, q = −2β (per vector, from two
// d×64 products). So all 4096 distances cost 4096 adds; these kernels do those adds, the argmin and
// the soft assignment softmax(−sqrt(dist2)/τ) with its marginals.
//
// Every function has a scalar reference (SimdLevel::Scalar) and an AVX-512 version; the default
// overloads use active_simd_level() (AVX2 falls back to scalar).
#include <cstdint>

#include "kernels/cpu/cpu_features.h"

namespace cvq {

inline constexpr int kCommvqSubCodes = 64;     // sub-codes per stage (6 bits each for A and B)
inline constexpr int kCommvqCodewords = 4096;  // codewords per stage (one 12-bit index)

struct CommvqArgmin {
  int index = 0;    // first index of the minimum
  float value = 0;  // the minimum of out[]
};

// Row pruning (optional `bound` argument below; 128 floats per stage, from commvq_row_bounds):
// for any 64-vector n, gfull[A,B] + q[B] >= base[A] + min_B(q[B] + n[B]) with
// base[A] = min_B(gfull[A,B] − n[B]). With n[B] = gfull[B,B]/2 (= ||sub-code B||² for a structured
// stage, whose G[B,B] is 0) the only coupling left out is 2G[A,B], so the bound is close and the
// SIMD kernels skip every row A that cannot hold the minimum or a codeword within the cutoff.
// Skipping changes nothing in the results (same rows, same arithmetic); the scalar reference
// ignores it. bound = [base (64) | n (64) | scale | padding], base rounded down; scale = max|gfull|
// + max|n| sizes the margin the kernels leave for float rounding.
inline constexpr int kCommvqBoundFloats = 2 * kCommvqSubCodes + 16;
void commvq_row_bounds(const float* gfull, float* bound);

// out[c] = offset + gfull[c] + p[c / 64] + q[c % 64] for c in [0, 4096) (out may be null: only the
// argmin is wanted). Returns the first index of the minimum.
CommvqArgmin commvq_pair_sum_argmin(const float* gfull, const float* p, const float* q, float offset, float* out,
                                    const float* bound = nullptr);
CommvqArgmin commvq_pair_sum_argmin_at(SimdLevel level, const float* gfull, const float* p, const float* q,
                                       float offset, float* out, const float* bound = nullptr);

// Argmin over 4096 precomputed values (brute-force distances).
CommvqArgmin commvq_argmin4096(const float* v);

// Soft assignment of one vector given its 4096 squared distances dist2 (negative values, from
// rounding, count as 0) and their minimum dmin2:
//   w[c] = exp(−(d_c − d_min)/τ) / Z,  d_c = sqrt(dist2[c]),  Z = Σ_c exp(−(d_c − d_min)/τ).
// Codewords with d_c > d_min + cutoff·τ get weight 0 (each would be below e^−cutoff, relative to the
// largest weight 1/Z); cutoff = +inf gives the dense softmax of the reference.
// Adds w to counts[4096], its row sums (over B) to wa[64] and column sums (over A) to wb[64].
// If dense_out is not null it receives the full weight row (zeros included).
// Returns the number n of codewords with non-zero weight; scratch.idx[0..n) and scratch.w[0..n) then
// hold them and their (normalized) weights.
struct CommvqSoftScratch {
  alignas(64) float w[kCommvqCodewords + 16];  // +16: SIMD compress writes whole vectors
  alignas(64) int32_t idx[kCommvqCodewords + 16];
  alignas(64) float dist[kCommvqCodewords];
  alignas(64) float rowmin[kCommvqSubCodes * 16];
};
int commvq_soft_accumulate(const float* dist2, float dmin2, float tau, float cutoff, float* counts, float* wa,
                           float* wb, float* dense_out, CommvqSoftScratch& scratch);
int commvq_soft_accumulate_at(SimdLevel level, const float* dist2, float dmin2, float tau, float cutoff, float* counts,
                              float* wa, float* wb, float* dense_out, CommvqSoftScratch& scratch);

// The factorized E step of one vector in one call: the distances of commvq_pair_sum_argmin (offset =
// ||r||²) followed by commvq_soft_accumulate, without storing the 4096 distances. The SIMD path
// keeps per-row minima and only visits rows (sub-code A) that hold a codeword within the cutoff —
// in practice a handful — working on whole 64-wide rows. Returns the argmin (first index, value).
// Agrees with the two-call composition up to float rounding of the exp and of the sums.
CommvqArgmin commvq_pair_soft_assign(const float* gfull, const float* p, const float* q, float offset, float tau,
                                     float cutoff, float* counts, float* wa, float* wb, CommvqSoftScratch& scratch,
                                     const float* bound = nullptr);
CommvqArgmin commvq_pair_soft_assign_at(SimdLevel level, const float* gfull, const float* p, const float* q,
                                        float offset, float tau, float cutoff, float* counts, float* wa, float* wb,
                                        CommvqSoftScratch& scratch, const float* bound = nullptr);

namespace detail {
CommvqArgmin commvq_pair_soft_assign_avx512(const float* gfull, const float* p, const float* q, float offset, float tau,
                                            float cutoff, float* counts, float* wa, float* wb,
                                            CommvqSoftScratch& scratch, const float* bound);
CommvqArgmin commvq_pair_sum_argmin_avx512(const float* gfull, const float* p, const float* q, float offset, float* out,
                                           const float* bound);
CommvqArgmin commvq_argmin4096_avx512(const float* v);
int commvq_soft_accumulate_avx512(const float* dist2, float dmin2, float tau, float cutoff, float* counts, float* wa,
                                  float* wb, float* dense_out, CommvqSoftScratch& scratch);
bool commvq_assign_avx512_compiled();
}  // namespace detail

}  // namespace cvq
