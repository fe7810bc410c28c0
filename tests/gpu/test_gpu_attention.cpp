// fp16 flash-decoding attention vs the CPU float attention on the same (fp16-representable) keys
// and values: prefill-style causal batches and long-context decode across many splits.
// Tolerance: 2e-5 absolute + 1e-4 relative (fp32 math, different summation order; outputs are
// convex combinations of values in [-1, 1]).
#include "gpu_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention_gpu.h"
#include "kernels/cuda/device_memory.h"

namespace cvq {
namespace {

void run_case(int n_q, int n_ctx, int n_head, int n_head_kv, int d, int split_tokens, bool bf16, uint32_t seed) {
  const int kv = n_head_kv * d, qd = n_head * d;
  auto round = [&](std::vector<float> v) {
    for (auto& x : v) x = bf16 ? bf16_to_float(float_to_bf16(x)) : fp16_to_float(float_to_fp16(x));
    return v;
  };
  const auto q = test::random_floats(static_cast<size_t>(n_q) * qd, seed, -2, 2);
  const auto k = round(test::random_floats(static_cast<size_t>(n_ctx) * kv, seed + 1));
  const auto v = round(test::random_floats(static_cast<size_t>(n_ctx) * kv, seed + 2));
  std::vector<int32_t> vis(static_cast<size_t>(n_q));
  for (int i = 0; i < n_q; ++i) vis[static_cast<size_t>(i)] = n_ctx - n_q + 1 + i;  // causal tail
  std::vector<float> want(q.size());
  AttentionArgs a;
  a.q = q.data();
  a.n_q = n_q;
  a.q_stride = qd;
  a.n_head = n_head;
  a.n_head_kv = n_head_kv;
  a.head_dim = d;
  a.k = k.data();
  a.v = v.data();
  a.n_ctx = n_ctx;
  a.kv_stride = kv;
  a.n_visible = vis.data();
  a.out = want.data();
  attention_f32(a);

  std::vector<uint16_t> kh(k.size()), vh(v.size());
  for (size_t i = 0; i < k.size(); ++i) {
    kh[i] = bf16 ? float_to_bf16(k[i]) : float_to_fp16(k[i]);
    vh[i] = bf16 ? float_to_bf16(v[i]) : float_to_fp16(v[i]);
  }
  auto dq = cuda::upload(q);
  auto dk = cuda::upload(kh), dv = cuda::upload(vh);
  auto dvis = cuda::upload(vis);
  cuda::DeviceBuffer<float> out(q.size());
  cuda::AttentionHalfArgs g;
  g.q = dq.get();
  g.n_q = n_q;
  g.q_stride = qd;
  g.n_head = n_head;
  g.n_head_kv = n_head_kv;
  g.head_dim = d;
  g.k = dk.get();
  g.v = dv.get();
  g.kv_stride = kv;
  g.n_ctx = n_ctx;
  g.n_visible = dvis.get();
  g.out = out.get();
  g.out_stride = qd;
  g.bf16 = bf16;
  g.split_tokens = split_tokens;
  cuda::attention_half(g);
  test::expect_close(cuda::download(out.get(), q.size()), want, 2e-5, 1e-4, "attention");
}

TEST(GpuAttention, PrefillBatchMatchesCpu) {
  CVQ_NEED_GPU();
  run_case(/*n_q=*/37, /*n_ctx=*/300, 9, 3, 64, 0, false, 1);
}

TEST(GpuAttention, DecodeAcrossManySplitsMatchesCpu) {
  CVQ_NEED_GPU();
  run_case(1, 5000, 32, 8, 128, 300, false, 2);  // 17 splits, the last one partial
  run_case(2, 4097, 8, 8, 128, 0, false, 3);     // automatic split length
}

TEST(GpuAttention, Bf16StoreMatchesCpu) {
  CVQ_NEED_GPU();
  run_case(4, 700, 4, 2, 96, 256, true, 4);
}

}  // namespace
}  // namespace cvq
