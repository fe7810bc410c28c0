#pragma once
// Beyond the reference (docs/METHOD.md §7): the value codebook is additive, so the codes the encoder picks
// can be polished at compression time and the codebook refitted in closed form.
//
// - Refinement (iterated conditional modes): starting from the encoder's argmax codes, each group in
//   turn takes whichever of its 4 choices {00, 10, 01, 11} gives y = bᵀC the largest cosine with
//   xbar (the magnitude is stored separately, so only the direction matters). It never lowers the
//   cosine, and stops early when nothing changes. Only dot products enter the choice, so it runs
//   on the Gram matrix of the codewords (ValueRefineTables, once per codebook): y·xbar and y·c_j for
//   every codeword come from two GEMMs per block of tokens, each group's choice then costs O(1), and
//   an accepted change updates the K dots y·c_j from two Gram rows (O(K), in double).
// - Codebook refit: with the codes fixed, C = argmin Σ_t w_t||b_tᵀC − x_t||² + λ||C||² (weighted
//   ridge least squares over the training tokens, X = v / s), solved from BᵀWB — seconds per layer.
//   The trainer weights each token by its share of the docs/METHOD.md §5.4 loss (value term + the attention
//   term's diagonal), so tokens that attention leans on (the attention sink) are fitted closely.
// Both are deterministic; the packed code format is unchanged.
#include <cstdint>
#include <vector>

namespace cvq {

class ValueCodec;

// What refinement needs of one codebook: Gram[i][j] = C_i·C_j (K x K) and a fingerprint of the
// codebook it was computed from (tables for another codebook are never used). The Gram matrix is
// kept as the SGEMM's floats (half the bytes of doubles, so it stays in L2) and widened to double
// where it is read, which gives the same doubles; each group's three entries (C_2g·C_2g,
// C_2g+1·C_2g+1, C_2g·C_2g+1) are also stored side by side, as the group loop reads them.
struct ValueRefineTables {
  int K = 0;
  uint64_t fingerprint = 0;
  std::vector<float> gram;
  std::vector<double> pairs;  // [K/2 x 3]
};
uint64_t value_codebook_fingerprint(const ValueCodec& codec);  // FNV-1a of the codebook's floats
ValueRefineTables make_value_refine_tables(const ValueCodec& codec);

// Refines n tokens' packed codes in place (threaded over tokens). xbar: [n x D] normalized inputs.
// `tables` must be make_value_refine_tables(codec) (checked by fingerprint); null builds them.
void refine_value_codes(const ValueCodec& codec, const float* xbar, int64_t n, uint8_t* codes, int sweeps,
                        const ValueRefineTables* tables = nullptr);

// Refits codec.codebook to the packed codes of n tokens with targets x = v/(s+eps) [n x D]:
// minimizes Σ_t w_t ||b_tᵀC − x_t||² + λ||C||² (w_t = 1 without row_weights).
// ridge: λ relative to the mean diagonal of BᵀWB.
void refit_value_codebook(ValueCodec& codec, const uint8_t* codes, const float* x, int64_t n, double ridge = 1e-3,
                          const float* row_weights = nullptr);

}  // namespace cvq
