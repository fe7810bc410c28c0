#pragma once
// Beyond the reference (COMMVQ.md §3): the value codebook is additive, so the codes the encoder picks
// can be polished at compression time and the codebook refitted in closed form.
//
// - Refinement (iterated conditional modes): starting from the encoder's argmax codes, each group in
//   turn takes whichever of its 4 choices {00, 10, 01, 11} gives y = bᵀC the largest cosine with
//   xbar (the magnitude is stored separately, so only the direction matters). A sweep costs about
//   3·D flops per group; it never lowers the cosine, and stops early when nothing changes.
// - Codebook refit: with the codes fixed, C = argmin ||B·C − X||² + λ||C||² (ridge least squares
//   over the training tokens, X = v / s), solved from BᵀB — seconds per layer.
// Both are deterministic; the packed code format is unchanged.
#include <cstdint>

namespace cvq {

class ValueCodec;

// Refines n tokens' packed codes in place (threaded over tokens). xbar: [n x D] normalized inputs.
void refine_value_codes(const ValueCodec& codec, const float* xbar, int64_t n, uint8_t* codes, int sweeps);

// Refits codec.codebook to the packed codes of n tokens with targets x = v/(s+eps) [n x D].
// ridge: λ relative to the mean diagonal of BᵀB.
void refit_value_codebook(ValueCodec& codec, const uint8_t* codes, const float* x, int64_t n, double ridge = 1e-3);

}  // namespace cvq
