// CommVQ key EM on the GPU vs KeyStageEm on the CPU (docs/METHOD.md §3.5, §4), from the same parameters:
// E-step statistics (counts, marginal weighted sums, loss) and the M-step parameters.
// Tolerances: loss 1e-5 relative; counts and sums 1e-4 of their totals (float weights summed in a
// different order, double on both sides at the end); M-step parameters 1e-3 relative + 1e-5.
#include <cmath>

#include "commvq/key_em.h"
#include "gpu/key_em_gpu.h"
#include "gpu_test_util.h"

namespace cvq {
namespace {

std::vector<double> as_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

void expect_close_d(const std::vector<double>& got, const std::vector<double>& want, double atol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i)
    if (!(std::fabs(got[i] - want[i]) <= atol)) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " (tol " << atol << ")";
      ++bad;
    }
}

double total_abs(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += std::fabs(x);
  return s;
}

TEST(GpuKeyEm, EStepAndMStepMatchCpu) {
  CVQ_NEED_GPU();
  const int d = 64;
  const int64_t n = 4000;
  // Unit-norm-ish pair-split vectors with per-token loss weights, as train_key_head builds them.
  auto x = test::random_floats(static_cast<size_t>(n) * d, 1, -1, 1);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int k = 0; k < d; ++k) s += double(x[static_cast<size_t>(i * d + k)]) * x[static_cast<size_t>(i * d + k)];
    for (int k = 0; k < d; ++k)
      x[static_cast<size_t>(i * d + k)] = static_cast<float>(x[static_cast<size_t>(i * d + k)] / std::sqrt(s));
  }
  const auto lw = test::random_floats(static_cast<size_t>(n), 2, 0.5f, 4.0f);
  KeyStageEm cpu(x.data(), lw.data(), n, d, /*structured=*/true);
  cpu.init_random(/*seed=*/3, /*init_tokens=*/1024, /*init_tau=*/1.0, /*cutoff=*/30.0, /*ridge=*/1e-6);
  gpu::GpuKeyStageEm gpu(x.data(), lw.data(), n, d);
  gpu.set_params(cpu.x(), cpu.y());

  for (double tau : {1e-2, 1e-3}) {
    const double loss_cpu = cpu.e_step(tau, 30.0);
    const double loss_gpu = gpu.e_step(tau, 30.0);
    EXPECT_NEAR(loss_gpu, loss_cpu, 1e-5 * loss_cpu) << "tau " << tau;
    expect_close_d(gpu.counts(), cpu.counts(), 1e-4 * total_abs(cpu.counts()) / 64, "counts");
    expect_close_d(gpu.sum_a(), cpu.sum_a(), 1e-4 * total_abs(cpu.sum_a()) / 64, "sum_a");
    expect_close_d(gpu.sum_b(), cpu.sum_b(), 1e-4 * total_abs(cpu.sum_b()) / 64, "sum_b");
    EXPECT_NEAR(gpu.hard_loss(), loss_cpu, 1e-5 * loss_cpu);

    cpu.m_step(1e-6);
    gpu.m_step(1e-6);
    const auto want_x = as_double(cpu.x()), want_y = as_double(cpu.y());
    double scale = 0;
    for (double v : want_x) scale = std::max(scale, std::fabs(v));
    expect_close_d(as_double(gpu.x()), want_x, 1e-3 * scale + 1e-5, "M-step X");
    expect_close_d(as_double(gpu.y()), want_y, 1e-3 * scale + 1e-5, "M-step Y");
    gpu.set_params(cpu.x(), cpu.y());  // continue both from the CPU parameters
  }
}

}  // namespace
}  // namespace cvq
