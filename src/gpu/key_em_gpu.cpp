#include "gpu/key_em_gpu.h"

#include <cmath>

#include "commvq/key_codebook.h"
#include "commvq/key_em.h"
#include "core/error.h"
#include "device/device.h"
#include "kernels/cuda/commvq_em_gpu.h"
#include "kernels/cuda/gemm_gpu.h"

namespace cvq::gpu {
namespace {
constexpr int kSub = 64;
constexpr int kCodes = 4096;
}  // namespace

GpuKeyStageEm::GpuKeyStageEm(const float* x_pairs, const float* loss_weight, int64_t n, int head_dim)
    : n_(n), d_(head_dim) {
  require_cuda("commvq key EM (cuda)");
  if (n <= 0) throw Error("commvq key EM (cuda): no training vectors");
  if (head_dim <= 0 || head_dim % 2 != 0) throw Error("commvq key EM (cuda): bad head dim " + std::to_string(head_dim));
  std::vector<float> xx(static_cast<size_t>(n)), lw(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {  // as KeyStageEm: ||x||² in double, weights / d
    double s = 0.0;
    for (int k = 0; k < d_; ++k) s += static_cast<double>(x_pairs[i * d_ + k]) * x_pairs[i * d_ + k];
    xx[static_cast<size_t>(i)] = static_cast<float>(s);
    lw[static_cast<size_t>(i)] = (loss_weight ? loss_weight[i] : 1.0f) / static_cast<float>(d_);
  }
  data_ = cuda::DeviceBuffer<float>(static_cast<size_t>(n) * d_);
  cuda::copy_to_device(data_.get(), x_pairs, data_.bytes());
  xx_ = cuda::upload(xx);
  lw_ = cuda::upload(lw);
  x_.assign(static_cast<size_t>(kSub) * (d_ / 2), 0.0f);
  y_ = x_;
  pq_ = cuda::DeviceBuffer<float>(static_cast<size_t>(n) * 2 * kSub);
  counts_dev_ = cuda::DeviceBuffer<double>(kCodes);
  loss_dev_ = cuda::DeviceBuffer<double>(1);
}

void GpuKeyStageEm::set_params(const std::vector<float>& x, const std::vector<float>& y) {
  if (x.size() != x_.size() || y.size() != y_.size()) throw Error("commvq key EM (cuda): bad parameters");
  x_ = x;
  y_ = y;
}

void GpuKeyStageEm::distances_setup() {
  // The per-stage structures of docs/METHOD.md §4 (d × 128 projection, 4096 codeword norms) are O(64·64·d): the
  // host codebook class computes them exactly as the CPU E step uses them.
  KeyCodebook one(d_, RopeLayout::HalfSplit, true);
  one.add_stage(x_, y_);
  proj_ = cuda::upload(std::vector<float>(one.proj(0), one.proj(0) + static_cast<size_t>(d_) * 2 * kSub));
  gfull_ = cuda::upload(std::vector<float>(one.gfull(0), one.gfull(0) + kCodes));
  cuda::sgemm_row_major(false, false, static_cast<int>(n_), 2 * kSub, d_, 1.0f, data_.get(), d_, proj_.get(), 2 * kSub,
                        0.0f, pq_.get(), 2 * kSub);
}

double GpuKeyStageEm::e_step(double tau, double cutoff) {
  if (!(tau > 0)) throw Error("commvq key EM (cuda): temperature must be positive");
  distances_setup();
  wab_.ensure(static_cast<size_t>(n_) * 2 * kSub);
  sab_.ensure(static_cast<size_t>(2 * kSub) * d_);
  cuda::zero_device(counts_dev_.get(), counts_dev_.bytes());
  cuda::zero_device(loss_dev_.get(), loss_dev_.bytes());
  cuda::commvq_em_assign(gfull_.get(), pq_.get(), xx_.get(), lw_.get(), n_, static_cast<float>(tau),
                         static_cast<float>(cutoff), counts_dev_.get(), wab_.get(), loss_dev_.get());
  // [SA; SB] (128 × d) = wabᵀ (128 × n) · x (n × d)
  cuda::sgemm_row_major(true, false, 2 * kSub, d_, static_cast<int>(n_), 1.0f, wab_.get(), 2 * kSub, data_.get(), d_,
                        0.0f, sab_.get(), d_);
  counts_ = cuda::download(counts_dev_.get(), kCodes);
  const std::vector<float> sab = cuda::download(sab_.get(), static_cast<size_t>(2 * kSub) * d_);
  const size_t half = static_cast<size_t>(kSub) * d_;
  sa_.assign(sab.begin(), sab.begin() + static_cast<std::ptrdiff_t>(half));
  sb_.assign(sab.begin() + static_cast<std::ptrdiff_t>(half), sab.end());
  have_stats_ = true;
  return cuda::download(loss_dev_.get(), 1)[0] / static_cast<double>(n_);
}

double GpuKeyStageEm::hard_loss() {
  distances_setup();
  cuda::zero_device(loss_dev_.get(), loss_dev_.bytes());
  cuda::commvq_em_argmin(gfull_.get(), pq_.get(), xx_.get(), lw_.get(), n_, nullptr, loss_dev_.get());
  return cuda::download(loss_dev_.get(), 1)[0] / static_cast<double>(n_);
}

void GpuKeyStageEm::m_step(double ridge) {
  if (!have_stats_) throw Error("commvq key EM (cuda): m_step before an E step");
  const int h = d_ / 2, m = 2 * kSub;
  std::vector<double> hm, g;
  key_m_step_system(counts_, sa_, sb_, x_, y_, d_, ridge, &hm, &g);
  // Row-major H is symmetric, so it is its own column-major form; g goes column-major (m × h).
  std::vector<double> g_col(static_cast<size_t>(m) * h);
  for (int r = 0; r < m; ++r)
    for (int f = 0; f < h; ++f) g_col[static_cast<size_t>(f) * m + r] = g[static_cast<size_t>(r) * h + f];
  auto h_dev = cuda::upload(hm);
  auto g_dev = cuda::upload(g_col);
  cuda::solve_dense(h_dev.get(), m, g_dev.get(), h);
  const std::vector<double> theta = cuda::download(g_dev.get(), g_col.size());
  for (int s = 0; s < kSub; ++s) {
    for (int f = 0; f < h; ++f) {
      const double xv = theta[static_cast<size_t>(f) * m + s], yv = theta[static_cast<size_t>(f) * m + kSub + s];
      if (!std::isfinite(xv) || !std::isfinite(yv))
        throw Error("commvq key EM (cuda): M step produced a non-finite value");
      x_[static_cast<size_t>(s) * h + f] = static_cast<float>(xv);
      y_[static_cast<size_t>(s) * h + f] = static_cast<float>(yv);
    }
  }
}

}  // namespace cvq::gpu
