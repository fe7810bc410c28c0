#pragma once
// CommVQ key EM of one (layer, head, stage) on a CUDA device (docs/METHOD.md §3.5, §4) — the GPU
// counterpart of KeyStageEm (src/commvq/key_em.h) with the factorized E step:
//   E: one N×d by d×128 cuBLAS GEMM (p = −2α, q = −2β), then per vector a warp forms the 4096
//      distances by adds, the argmin and the soft weights (kernels/cuda/commvq_em_gpu.h); the
//      marginal sums Σ wA x and Σ wB x are one 128×N by N×d cuBLAS GEMM.
//   M: the same 128×128 system as the CPU (key_m_step_system), solved on the device by cuBLAS LU.
// Statistics and parameters agree with KeyStageEm to float rounding.
#include <cstdint>
#include <vector>

#include "kernels/cuda/device_memory.h"

namespace cvq::gpu {

class GpuKeyStageEm {
 public:
  // x_pairs: n pair-split vectors of head_dim floats (host); loss_weight: per-token weight of the
  // squared error (null = 1). The data is uploaded once.
  GpuKeyStageEm(const float* x_pairs, const float* loss_weight, int64_t n, int head_dim);

  void set_params(const std::vector<float>& x, const std::vector<float>& y);
  // Soft E step at temperature tau; returns the hard-assignment loss (as KeyStageEm::e_step).
  double e_step(double tau, double cutoff);
  double hard_loss();
  void m_step(double ridge);

  const std::vector<float>& x() const { return x_; }
  const std::vector<float>& y() const { return y_; }
  const std::vector<double>& counts() const { return counts_; }
  const std::vector<double>& sum_a() const { return sa_; }
  const std::vector<double>& sum_b() const { return sb_; }

 private:
  void distances_setup();  // uploads proj and gfull of the current parameters, pq = x·proj

  int64_t n_;
  int d_;
  std::vector<float> x_, y_;
  std::vector<double> counts_, sa_, sb_;
  bool have_stats_ = false;
  cuda::DeviceBuffer<float> data_, xx_, lw_, proj_, gfull_, pq_, wab_, sab_;
  cuda::DeviceBuffer<double> counts_dev_, loss_dev_;
};

}  // namespace cvq::gpu
