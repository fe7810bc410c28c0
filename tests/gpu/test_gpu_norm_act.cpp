// Elementwise GPU ops vs their CPU versions: RMSNorm, SwiGLU, RoPE (both layouts), embedding rows,
// half conversions, the weight GEMM. Tolerances: fp32 kernels 1e-5 relative (+1e-6 absolute,
// different summation orders and libm); the GEMM 1e-4 relative to the row's scale (fp16 inputs,
// fp32 accumulation in a different order).
#include <cmath>

#include "gpu/rope_tables.h"
#include "gpu_test_util.h"
#include "kernels/cpu/norm_act.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/gemm_gpu.h"
#include "kernels/cuda/norm_act_gpu.h"
#include "kernels/cuda/rope_gpu.h"

namespace cvq {
namespace {

using cuda::download;
using cuda::upload;

TEST(GpuNormAct, RmsNormMatchesCpu) {
  CVQ_NEED_GPU();
  const int n = 7, dim = 576;
  const auto x = test::random_floats(static_cast<size_t>(n) * dim, 1, -3, 3), w = test::random_floats(dim, 2);
  std::vector<float> want(x.size());
  rmsnorm_rows(x.data(), w.data(), n, dim, 1e-5f, want.data());
  auto dx = upload(x), dw = upload(w);
  cuda::DeviceBuffer<float> dy(x.size());
  cuda::rmsnorm_rows(dx.get(), dw.get(), n, dim, 1e-5f, dy.get());
  test::expect_close(download(dy.get(), x.size()), want, 1e-6, 1e-5, "rmsnorm");
}

TEST(GpuNormAct, SwigluAndAddMatchCpu) {
  CVQ_NEED_GPU();
  const size_t n = 10000;
  auto g = test::random_floats(n, 3, -6, 6);
  const auto u = test::random_floats(n, 4, -2, 2);
  auto dg = upload(g), du = upload(u);
  swiglu_inplace(g.data(), u.data(), static_cast<int64_t>(n));
  cuda::swiglu_inplace(dg.get(), du.get(), static_cast<int64_t>(n));
  test::expect_close(download(dg.get(), n), g, 1e-6, 1e-5, "swiglu");
  cuda::add_inplace(dg.get(), du.get(), static_cast<int64_t>(n));
  for (size_t i = 0; i < n; ++i) g[i] += u[i];
  test::expect_close(download(dg.get(), n), g, 1e-6, 1e-6, "add");
}

class GpuRope : public ::testing::TestWithParam<RopeLayout> {};

TEST_P(GpuRope, MatchesCpuRope) {
  CVQ_NEED_GPU();
  const int d = 64, heads = 5, n = 9;
  const Rope rope(d, 10000.0, GetParam());
  auto x = test::random_floats(static_cast<size_t>(n) * heads * d, 5);
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = 1000 * i + 3;
  const auto cs = gpu::cos_sin_rows(rope, pos.data(), n);
  auto dx = upload(x), dcs = upload(cs);
  for (int i = 0; i < n; ++i) rope.apply(x.data() + static_cast<size_t>(i) * heads * d, heads, pos[i]);
  cuda::rope_apply(dx.get(), n, heads, d, dcs.get(), GetParam() == RopeLayout::HalfSplit);
  test::expect_close(download(dx.get(), x.size()), x, 1e-6, 1e-6, "rope");
}

INSTANTIATE_TEST_SUITE_P(Layouts, GpuRope, ::testing::Values(RopeLayout::Adjacent, RopeLayout::HalfSplit));

TEST(GpuNormAct, EmbedRowsAndHalfConversions) {
  CVQ_NEED_GPU();
  const int vocab = 50, dim = 40;
  const auto table = test::fp16_rounded(test::random_floats(static_cast<size_t>(vocab) * dim, 6));
  auto dt = upload(test::to_fp16(table));
  const std::vector<int32_t> ids{3, 49, 0, 3};
  auto did = upload(ids);
  cuda::DeviceBuffer<float> out(ids.size() * dim);
  cuda::embed_rows(dt.get(), dim, did.get(), static_cast<int>(ids.size()), out.get());
  const auto got = download(out.get(), out.size());
  for (size_t t = 0; t < ids.size(); ++t)
    for (int i = 0; i < dim; ++i) ASSERT_EQ(got[t * dim + i], table[static_cast<size_t>(ids[t]) * dim + i]);
  // float -> fp16 / bf16 -> float agrees with the host conversions bit for bit.
  const auto x = test::random_floats(1000, 7, -100, 100);
  auto dx = upload(x);
  cuda::DeviceBuffer<uint16_t> h(x.size());
  for (bool bf16 : {false, true}) {
    cuda::float_to_half(dx.get(), h.get(), static_cast<int64_t>(x.size()), bf16);
    const auto hv = download(h.get(), x.size());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(hv[i], bf16 ? float_to_bf16(x[i]) : float_to_fp16(x[i])) << i;
  }
}

TEST(GpuNormAct, HalfWeightGemmMatchesFloatProduct) {
  CVQ_NEED_GPU();
  const int rows = 96, cols = 200, T = 5;
  const auto w = test::fp16_rounded(test::random_floats(static_cast<size_t>(rows) * cols, 8));
  const auto x = test::fp16_rounded(test::random_floats(static_cast<size_t>(T) * cols, 9));
  std::vector<float> want(static_cast<size_t>(T) * rows);
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < rows; ++r) {
      double s = 0.0;
      for (int c = 0; c < cols; ++c) s += double(x[t * cols + c]) * w[static_cast<size_t>(r) * cols + c];
      want[static_cast<size_t>(t) * rows + r] = static_cast<float>(s);
    }
  auto dw = upload(test::to_fp16(w)), dx = upload(test::to_fp16(x));
  cuda::DeviceBuffer<float> dy(want.size());
  cuda::gemm_half_weights(cuda::HalfType::F16, dw.get(), rows, cols, dx.get(), T, dy.get());
  // sqrt(cols)·|x||w| ~ 14 at most: 1e-4 relative of that scale.
  test::expect_close(download(dy.get(), want.size()), want, 2e-4, 1e-4, "gemm");
}

}  // namespace
}  // namespace cvq
