#pragma once
// Device kernels of CommVQ key EM (docs/METHOD.md §3.5, §4), the CUDA side of kernels/cpu/commvq_assign.h:
// the factorized soft E step over all training vectors, and the M step's 128×128 solve by cuBLAS.
// The distances come from one N×d by d×128 GEMM (the caller's, cuBLAS) giving p = −2α and q = −2β:
//   dist2[c] = ||x||² + gfull[c] + p[c/64] + q[c%64],   c = 64·A + B,
// so no N×4096×d product is formed.
#include <cstdint>

namespace cvq::cuda {

// One warp per vector i: argmin and soft assignment softmax(−sqrt(dist2)/τ) over the codewords
// within cutoff·τ of the nearest (as commvq_soft_accumulate). Adds the weights to counts[4096]
// (double), writes the marginals wab[i] = (wA[64], wB[64]) (zeroed here) and adds
// Σ_i loss_weight[i]·max(min dist2, 0) to *loss (double). pq: n × 128 (p then q), xx: ||x_i||².
void commvq_em_assign(const float* gfull, const float* pq, const float* xx, const float* loss_weight, int64_t n,
                      float tau, float cutoff, double* counts, float* wab, double* loss);

// Hard assignment only: argmin index per vector (first index of the minimum) and the loss.
void commvq_em_argmin(const float* gfull, const float* pq, const float* xx, const float* loss_weight, int64_t n,
                      int32_t* index, double* loss);

// Solves H·θ = g in double on the device (cuBLAS LU with partial pivoting), H: m × m, g: m × k,
// both column-major on the device; θ overwrites g. Throws if H is singular.
void solve_dense(double* h, int m, double* g, int k);

}  // namespace cvq::cuda
