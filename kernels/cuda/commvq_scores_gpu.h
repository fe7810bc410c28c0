#pragma once
// CommVQ attention scores on coded keys, on the device (the CUDA side of
// kernels/cpu/commvq_scores.h, docs/METHOD.md §6.1): per decode step a table U folds each query into the
// codebook (cost independent of the context), then every cached token costs 2R row gathers and one
// d-long dot with its cos/sin. Same layouts as the CPU kernels (pair-split vectors, codebook `xy` =
// R stages of X (64×h) then Y (64×h), 12-bit codes c = 64·A + B).
//
// cos/sin of a token's position come either from an explicit per-token array (as the CPU API takes
// them) or, for long contexts, from two small tables by angle addition: position m = 256·hi + lo,
// cos(mω) = cos(256·hi·ω)cos(lo·ω) − sin(256·hi·ω)sin(lo·ω) (and likewise sin), so no per-token
// array of d floats is read.
#include <cstdint>

namespace cvq::cuda {

inline constexpr int kRopeFineSteps = 256;

struct CosSinSource {
  const float* per_token = nullptr;  // n × d (cos for f < h, then sin), token t at row t; or
  const float* coarse = nullptr;     // rows hi = 0.. of cos/sin(256·hi·ω) (d floats each), and
  const float* fine = nullptr;       // 256 rows of cos/sin(lo·ω)
  int64_t first_position = 0;        // tables: token t is at position first_position + t
};

// table[g][j][s][·] (d floats) as commvq_query_table (including the 1/√d); q_pairs: G × d.
void commvq_query_table(const float* xy, int stages, int head_dim, const float* q_pairs, int n_query, float* table);

// scores[g·score_stride + t] = n_t · Σ_f (P_f cos + Q_f sin) for the G query heads of one KV head.
// codes: R uint16 per token at code_stride; norms: fp16 per token (the stored key norms).
void commvq_scores_codes(const float* table, int stages, int head_dim, int n_query, const uint16_t* codes,
                         int64_t code_stride, const uint16_t* norms_fp16, const CosSinSource& cs, int64_t n_tokens,
                         float* scores, int64_t score_stride);

// Decodes the keys of one KV head (k̂ = n·Σ_j C_j[code_j], rotated to the token's position) into a
// half-precision store in head layout (pair_x/pair_y per `half_split`), row t at out + t·out_stride:
// the first half of "decode then attend".
void commvq_decode_keys(const float* xy, int stages, int head_dim, const uint16_t* codes, int64_t code_stride,
                        const uint16_t* norms_fp16, const CosSinSource& cs, int64_t n_tokens, bool half_split,
                        uint16_t* out, int64_t out_stride);

}  // namespace cvq::cuda
