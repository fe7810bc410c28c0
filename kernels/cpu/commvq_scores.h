#pragma once
// Attention scores against CommVQ-coded keys (docs/METHOD.md §6.1), for one KV head and the G query
// heads of its GQA group, over a batch of cached tokens (typically one 128-token block).
//
// Conventions shared with src/commvq/key_codebook.h:
//  * "pair-split" vectors: d floats (x_0..x_{h-1}, y_0..y_{h-1}), h = d/2, (x_f, y_f) = RoPE pair f
//    (whatever the head layout: Adjacent or HalfSplit).
//  * codebook parameters `xy`: R stages, each X (64×h) then Y (64×h), row s = sub-code s.
//  * codes: R uint16 per token (12 bits: c = 64·A + B), token t at codes + t·code_stride.
//  * cos_sin: d floats per token: cos(m·ω_f) for f < h, then sin(m·ω_f) (m = the token's position).
//  * norms: the per-token key norm n_m (shared by the KV heads of a layer).
//  * scores[g·score_stride + t] = n_t · q̃_g · RoPE_m(k̂_t) / √d, k̂_t = Σ_j C_j[code_j] (pre-RoPE).
//
// Two ways to the same numbers:
//  * commvq_scores_codes — the paper's way: a per-step table U (folds the query into the codebook,
//    cost independent of context), then per token only 2R row gathers and one d-long dot with cos/sin.
//    Per token cost O(G·R·d) adds. The table of one query head is R·64·d floats (180 KiB for d=64,
//    R=11; 688 KiB for d=128, R=21): build it per head and run all of that head's blocks against it
//    while it is in L2.
//  * commvq_scores_decode — decode the key (2R gathers of X/Y rows), rotate it, dot with the G
//    queries: O(R·d + G·d). Also codes-only (native), no table.
// commvq_scores_reference is the plain scalar "decode, RoPE, dot" in double, for tests.
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/cpu_features.h"

namespace cvq {

// Floats in the tables of G query heads: G·R·64·d.
size_t commvq_query_table_floats(int stages, int head_dim, int n_query);

// table[g][j][s][·] (d floats) = U_{j,s} = q̃ᵀM(X_j[s], Y_j[s]) pair by pair, as (U.x_0..U.x_{h-1},
// U.y_0..U.y_{h-1}), times 1/√d. A token with codes (A_j, B_j) then has
//   P_f = Σ_j U.x[A_j]_f + U.y[B_j]_f,  Q_f = Σ_j U.y[A_j]_f − U.x[B_j]_f,
//   score = n·Σ_f (P_f cos(mω_f) + Q_f sin(mω_f)).
// q_pairs: G×d post-RoPE queries, pair-split.
void commvq_query_table(const float* xy, int stages, int head_dim, const float* q_pairs, int n_query, float* table);

void commvq_scores_codes(const float* table, int stages, int head_dim, int n_query, const uint16_t* codes,
                         int64_t code_stride, const float* norms, const float* cos_sin, int64_t n_tokens, float* scores,
                         int64_t score_stride);
void commvq_scores_codes_at(SimdLevel level, const float* table, int stages, int head_dim, int n_query,
                            const uint16_t* codes, int64_t code_stride, const float* norms, const float* cos_sin,
                            int64_t n_tokens, float* scores, int64_t score_stride);

void commvq_scores_decode(const float* xy, int stages, int head_dim, const float* q_pairs, int n_query,
                          const uint16_t* codes, int64_t code_stride, const float* norms, const float* cos_sin,
                          int64_t n_tokens, float* scores, int64_t score_stride);
void commvq_scores_decode_at(SimdLevel level, const float* xy, int stages, int head_dim, const float* q_pairs,
                             int n_query, const uint16_t* codes, int64_t code_stride, const float* norms,
                             const float* cos_sin, int64_t n_tokens, float* scores, int64_t score_stride);

// cos/sin rows for n consecutive positions p0 + t by angle addition: base = (cos(p0·ω), sin(p0·ω))
// (d floats), offsets = rows for t = 0..n−1 (n×d); out[t] = rotate(base, offsets[t]).
void commvq_block_cos_sin(const float* base, const float* offsets, int64_t n, int head_dim, float* out);

// Scalar, double accumulation: decode k̂ (pair-split), rotate by cos/sin, dot, scale.
void commvq_scores_reference(const float* xy, int stages, int head_dim, const float* q_pairs, int n_query,
                             const uint16_t* codes, int64_t code_stride, const float* norms, const float* cos_sin,
                             int64_t n_tokens, float* scores, int64_t score_stride);

namespace detail {
bool commvq_scores_avx512_compiled();
// Return false (computing nothing) for head dims they have no kernel for (d must be 64 or 128).
bool commvq_scores_codes_avx512(const float* table, int stages, int head_dim, int n_query, const uint16_t* codes,
                                int64_t code_stride, const float* norms, const float* cos_sin, int64_t n_tokens,
                                float* scores, int64_t score_stride);
bool commvq_block_cos_sin_avx512(const float* base, const float* offsets, int64_t n, int head_dim, float* out);
bool commvq_scores_decode_avx512(const float* xy, int stages, int head_dim, const float* q_pairs, int n_query,
                                 const uint16_t* codes, int64_t code_stride, const float* norms, const float* cos_sin,
                                 int64_t n_tokens, float* scores, int64_t score_stride);
}  // namespace detail

}  // namespace cvq
