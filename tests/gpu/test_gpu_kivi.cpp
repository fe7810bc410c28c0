// KIVI fused dequantization kernels on the GPU vs the CPU kernels on the same packed store.
// Tolerance: 1e-5 of the largest |value| + 1e-5 relative (fp32 sums of up to 64 channels / 137
// tokens in a different order; cancellation makes a purely relative bound too tight).
#include "gpu_test_util.h"
#include "kernels/cpu/kivi_attention.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/kivi_attention_gpu.h"

namespace cvq {
namespace {

std::vector<uint32_t> random_words(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> w(n);
  for (auto& x : w) x = rng();
  return w;
}

class GpuKivi : public ::testing::TestWithParam<int> {};  // bits

TEST_P(GpuKivi, ScoresAndValuesMatchCpu) {
  CVQ_NEED_GPU();
  const int bits = GetParam(), G = 32, d = 64, n_kv = 2, head = 1, rows = 3;
  const int64_t n = 5 * G, t0 = 13, t1 = 150;
  const int64_t chan_stride = static_cast<int64_t>(n_kv) * d;
  const int words_k = (G * bits + 31) / 32;
  const int64_t groups = n / G;
  // Keys: per (group, channel) words + fp16 scale/zero; this head starts at channel head·d.
  const auto kcodes = random_words(static_cast<size_t>(groups * chan_stride * words_k), 1);
  const auto kscale = test::to_fp16(test::random_floats(static_cast<size_t>(groups * chan_stride), 2, 0.01f, 0.2f));
  const auto kzero = test::to_fp16(test::random_floats(kscale.size(), 3, -0.5f, 0.5f));
  // Values: per (token, group of G channels).
  const int words_v = (G * bits + 31) / 32, vgroups = n_kv * d / G;
  const auto vcodes = random_words(static_cast<size_t>(n * vgroups * words_v), 4);
  const auto vscale = test::to_fp16(test::random_floats(static_cast<size_t>(n * vgroups), 5, 0.01f, 0.2f));
  const auto vzero = test::to_fp16(test::random_floats(vscale.size(), 6, -0.5f, 0.5f));
  const auto q = test::random_floats(static_cast<size_t>(rows) * d, 7);
  const auto p = test::random_floats(static_cast<size_t>(rows) * (t1 - t0), 8, 0.0f, 1.0f);

  auto view_k = [&](const uint32_t* c, const uint16_t* s, const uint16_t* z) {
    KiviKeyView k;
    k.bits = bits;
    k.group = G;
    k.words = words_k;
    k.d = d;
    k.codes = c + static_cast<int64_t>(head) * d * words_k;
    k.scale = s + head * d;
    k.zero = z + head * d;
    k.chan_stride = chan_stride;
    return k;
  };
  auto view_v = [&](const uint32_t* c, const uint16_t* s, const uint16_t* z) {
    KiviValueView v;
    v.bits = bits;
    v.group = G;
    v.words = words_v;
    v.d = d;
    v.token_words = static_cast<int64_t>(vgroups) * words_v;
    v.token_groups = vgroups;
    const int head_groups = d / G;
    v.codes = c + static_cast<int64_t>(head) * head_groups * words_v;
    v.scale = s + head * head_groups;
    v.zero = z + head * head_groups;
    return v;
  };
  const int64_t ld = t1 - t0;
  std::vector<float> want_s(static_cast<size_t>(rows * ld)), want_o(static_cast<size_t>(rows) * d, 0.5f);
  kivi_scores(view_k(kcodes.data(), kscale.data(), kzero.data()), q.data(), rows, 0.125f, t0, t1, want_s.data(), ld);
  kivi_values(view_v(vcodes.data(), vscale.data(), vzero.data()), p.data(), ld, rows, t0, t1, want_o.data());

  auto dkc = cuda::upload(kcodes), dvc = cuda::upload(vcodes);
  auto dks = cuda::upload(kscale), dkz = cuda::upload(kzero), dvs = cuda::upload(vscale), dvz = cuda::upload(vzero);
  auto dq = cuda::upload(q), dp = cuda::upload(p);
  cuda::DeviceBuffer<float> ds(want_s.size());
  auto dout = cuda::upload(std::vector<float>(want_o.size(), 0.5f));  // accumulates onto existing output
  cuda::kivi_scores(view_k(dkc.get(), dks.get(), dkz.get()), dq.get(), rows, 0.125f, t0, t1, ds.get(), ld);
  cuda::kivi_values(view_v(dvc.get(), dvs.get(), dvz.get()), dp.get(), ld, rows, t0, t1, dout.get());
  test::expect_close(cuda::download(ds.get(), want_s.size()), want_s, 1e-5 * test::max_abs(want_s), 1e-5,
                     "kivi scores");
  test::expect_close(cuda::download(dout.get(), want_o.size()), want_o, 1e-5 * test::max_abs(want_o), 1e-5,
                     "kivi values");
}

INSTANTIATE_TEST_SUITE_P(Bits, GpuKivi, ::testing::Values(1, 2, 4));

}  // namespace
}  // namespace cvq
