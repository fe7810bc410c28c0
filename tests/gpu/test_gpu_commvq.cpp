// CommVQ attention on codes, GPU vs CPU (docs/METHOD.md §6.1, §6.2): query tables + gathered scores,
// decoded keys, value accumulation + codebook projection, and one layer's decode attention on codes
// (with a full-precision window) vs the CPU kernels composed the same way and vs the GPU's own
// decode-then-attend path. Tolerances: fp32 paths 1e-4 relative to the score scale; paths through
// fp16 decoded keys/values 2e-3.
#include <algorithm>
#include <cmath>

#include "gpu/rope_tables.h"
#include "gpu_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/commvq_scores.h"
#include "kernels/cpu/commvq_values.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/commvq_attention_gpu.h"
#include "kernels/cuda/commvq_scores_gpu.h"
#include "kernels/cuda/commvq_values_gpu.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/norm_act_gpu.h"

namespace cvq {
namespace {

constexpr int kSub = 64;

std::vector<uint16_t> random_codes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> c(n);
  for (auto& x : c) x = static_cast<uint16_t>(rng() & 4095);
  return c;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> c(n);
  for (auto& x : c) x = static_cast<uint8_t>(rng() & 255);
  return c;
}

// Shapes of one head's stage set.
struct KeySetup {
  int R = 5, d = 64, G = 3;
  int64_t n = 300;
  std::vector<float> xy, q, cos_sin, norms_f;
  std::vector<uint16_t> codes, norms;
  std::vector<int32_t> positions;
  Rope rope{64, 10000.0, RopeLayout::HalfSplit};
  KeySetup() {
    xy = test::random_floats(static_cast<size_t>(R) * 2 * kSub * (d / 2), 11, -0.3f, 0.3f);
    q = test::random_floats(static_cast<size_t>(G) * d, 12, -2, 2);
    codes = random_codes(static_cast<size_t>(n) * R, 13);
    norms_f = test::fp16_rounded(test::random_floats(static_cast<size_t>(n), 14, 0.5f, 3.0f));
    norms = test::to_fp16(norms_f);
    positions.resize(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) positions[static_cast<size_t>(t)] = static_cast<int32_t>(7 * t + 1000);
    cos_sin = gpu::cos_sin_rows(rope, positions.data(), static_cast<int>(n));
  }
  std::vector<float> cpu_scores() const {
    std::vector<float> table(commvq_query_table_floats(R, d, G)), s(static_cast<size_t>(G) * n);
    commvq_query_table(xy.data(), R, d, q.data(), G, table.data());
    commvq_scores_codes(table.data(), R, d, G, codes.data(), R, norms_f.data(), cos_sin.data(), n, s.data(), n);
    return s;
  }
};

TEST(GpuCommvq, QueryTableAndScoresMatchCpu) {
  CVQ_NEED_GPU();
  KeySetup k;
  const auto want = k.cpu_scores();
  auto dxy = cuda::upload(k.xy), dq = cuda::upload(k.q), dcs = cuda::upload(k.cos_sin);
  auto dcodes = cuda::upload(k.codes), dnorms = cuda::upload(k.norms);
  cuda::DeviceBuffer<float> table(commvq_query_table_floats(k.R, k.d, k.G)), s(want.size());
  cuda::commvq_query_table(dxy.get(), k.R, k.d, dq.get(), k.G, table.get());
  // The table itself equals the CPU's.
  std::vector<float> cpu_table(table.size());
  commvq_query_table(k.xy.data(), k.R, k.d, k.q.data(), k.G, cpu_table.data());
  test::expect_close(cuda::download(table.get(), table.size()), cpu_table, 1e-6, 1e-5, "table");
  const double scale = test::max_abs(want);
  cuda::CosSinSource per_token;
  per_token.per_token = dcs.get();
  cuda::commvq_scores_codes(table.get(), k.R, k.d, k.G, dcodes.get(), k.R, dnorms.get(), per_token, k.n, s.get(), k.n);
  test::expect_close(cuda::download(s.get(), want.size()), want, 1e-4 * scale, 0, "scores (per-token cos/sin)");
  // The same through the coarse/fine angle tables (positions first_position + t need 7t spacing:
  // use a contiguous run instead and compare against CPU rows for it).
  std::vector<int32_t> pos(static_cast<size_t>(k.n));
  for (int64_t t = 0; t < k.n; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(100000 + t);
  const auto cs2 = gpu::cos_sin_rows(k.rope, pos.data(), static_cast<int>(k.n));
  std::vector<float> table_cpu(cpu_table), want2(want.size());
  commvq_scores_codes(table_cpu.data(), k.R, k.d, k.G, k.codes.data(), k.R, k.norms_f.data(), cs2.data(), k.n,
                      want2.data(), k.n);
  auto tables = gpu::make_rope_tables(k.rope, 100000 + k.n);
  cuda::CosSinSource tab;
  tab.coarse = tables.coarse.get();
  tab.fine = tables.fine.get();
  tab.first_position = 100000;
  cuda::commvq_scores_codes(table.get(), k.R, k.d, k.G, dcodes.get(), k.R, dnorms.get(), tab, k.n, s.get(), k.n);
  test::expect_close(cuda::download(s.get(), want2.size()), want2, 1e-4 * test::max_abs(want2), 0,
                     "scores (angle tables)");
}

TEST(GpuCommvq, DecodedKeysGiveTheReferenceScores) {
  CVQ_NEED_GPU();
  KeySetup k;
  std::vector<float> want(static_cast<size_t>(k.G) * k.n);
  commvq_scores_reference(k.xy.data(), k.R, k.d, k.q.data(), k.G, k.codes.data(), k.R, k.norms_f.data(),
                          k.cos_sin.data(), k.n, want.data(), k.n);
  auto dxy = cuda::upload(k.xy), dcs = cuda::upload(k.cos_sin);
  auto dcodes = cuda::upload(k.codes), dnorms = cuda::upload(k.norms);
  cuda::DeviceBuffer<uint16_t> keys(static_cast<size_t>(k.n) * k.d);
  cuda::CosSinSource cs;
  cs.per_token = dcs.get();
  cuda::commvq_decode_keys(dxy.get(), k.R, k.d, dcodes.get(), k.R, dnorms.get(), cs, k.n, /*half_split=*/true,
                           keys.get(), k.d);
  const auto kh = cuda::download(keys.get(), keys.size());
  std::vector<float> got(want.size());
  for (int g = 0; g < k.G; ++g)
    for (int64_t t = 0; t < k.n; ++t) {
      double s = 0;
      for (int i = 0; i < k.d; ++i)
        s += double(k.q[static_cast<size_t>(g) * k.d + i]) * fp16_to_float(kh[static_cast<size_t>(t) * k.d + i]);
      got[static_cast<size_t>(g) * k.n + t] = static_cast<float>(s / std::sqrt(double(k.d)));
    }
  test::expect_close(got, want, 2e-3 * test::max_abs(want), 0, "decoded keys");
}

TEST(GpuCommvq, ValueAccumulateAndProjectMatchCpu) {
  CVQ_NEED_GPU();
  const int n_kv = 3, d = 64, D = n_kv * d, bits = 2, code_bits = bits * D, rows = 3, kv_head = 1;
  const int64_t n = 500, stride = code_bits / 8;
  const auto codes = random_bytes(static_cast<size_t>(n * stride), 21);
  const auto p = test::to_fp16(test::random_floats(static_cast<size_t>(n), 22, 0.5f, 2.0f));
  const auto w = test::random_floats(static_cast<size_t>(rows) * n, 23, 0.0f, 0.01f);
  const auto cb = test::random_floats(static_cast<size_t>(code_bits) * D, 24, -0.2f, 0.2f);
  const auto scale = test::random_floats(static_cast<size_t>(D), 25, 0.5f, 2.0f);
  std::vector<float> want(static_cast<size_t>(rows) * d);
  commvq_values_attend(codes.data(), stride, p.data(), n, code_bits, w.data(), n, rows, cb.data(), scale.data(), D,
                       kv_head, d, want.data(), d);
  auto dcodes = cuda::upload(codes);
  auto dp = cuda::upload(p);
  auto dw = cuda::upload(w), dcb = cuda::upload(cb), ds = cuda::upload(scale);
  auto acc = cuda::upload(std::vector<float>(static_cast<size_t>(rows) * code_bits, 0.0f));
  cuda::DeviceBuffer<float> out(want.size());
  cuda::commvq_values_accumulate(dcodes.get(), stride, dp.get(), n, code_bits, dw.get(), n, rows, acc.get());
  std::vector<float> cpu_acc(static_cast<size_t>(rows) * code_bits, 0.0f);
  commvq_values_accumulate(codes.data(), stride, p.data(), n, code_bits, w.data(), n, rows, cpu_acc.data());
  test::expect_close(cuda::download(acc.get(), cpu_acc.size()), cpu_acc, 1e-5, 1e-5, "accumulate");
  cuda::commvq_values_project(acc.get(), rows, code_bits, dcb.get(), ds.get(), D, kv_head, rows, d, out.get(), d);
  test::expect_close(cuda::download(out.get(), want.size()), want, 1e-5 * test::max_abs(want) + 1e-7, 1e-4, "project");
}

// One layer, one query: GPU attention on codes (+ window) vs the CPU kernels composed the same way.
TEST(GpuCommvq, LayerDecodeAttentionMatchesCpuComposition) {
  CVQ_NEED_GPU();
  const int n_head = 8, n_kv = 2, d = 64, G = n_head / n_kv, D = n_kv * d, bits = 2;
  const int R = static_cast<int>(std::lround(bits * d / 12.0)), code_bits = bits * D;
  const int64_t n = 700, nw = 5;
  const Rope rope(d, 10000.0, RopeLayout::HalfSplit);
  const auto xy = test::random_floats(static_cast<size_t>(n_kv) * R * 2 * kSub * (d / 2), 31, -0.1f, 0.1f);
  const auto key_codes = random_codes(static_cast<size_t>(n) * n_kv * R, 32);
  const auto norms_f = test::fp16_rounded(test::random_floats(static_cast<size_t>(n), 33, 0.5f, 2.0f));
  const auto vcodes = random_bytes(static_cast<size_t>(n) * code_bits / 8, 34);
  const auto p_f = test::fp16_rounded(test::random_floats(static_cast<size_t>(n), 35, 0.5f, 2.0f));
  const auto cb = test::random_floats(static_cast<size_t>(code_bits) * D, 36, -0.1f, 0.1f);
  const auto scale = test::random_floats(static_cast<size_t>(D), 37, 0.5f, 2.0f);
  const auto q = test::random_floats(static_cast<size_t>(n_head) * d, 38, -1, 1);  // head layout = pair-split (neox)
  const auto wk = test::fp16_rounded(test::random_floats(static_cast<size_t>(nw) * D, 39));
  const auto wv = test::fp16_rounded(test::random_floats(static_cast<size_t>(nw) * D, 40));
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(t);
  const auto cs = gpu::cos_sin_rows(rope, pos.data(), static_cast<int>(n));

  // CPU: scores on codes per KV head, window scores, softmax, values on codes + window values.
  const int64_t ld = n + nw;
  std::vector<float> sc(static_cast<size_t>(n_head) * ld);
  std::vector<uint16_t> codes_g(static_cast<size_t>(n) * R);
  for (int g = 0; g < n_kv; ++g) {
    for (int64_t t = 0; t < n; ++t)
      for (int j = 0; j < R; ++j)
        codes_g[static_cast<size_t>(t * R + j)] = key_codes[static_cast<size_t>((t * n_kv + g) * R + j)];
    std::vector<float> table(commvq_query_table_floats(R, d, G));
    commvq_query_table(xy.data() + static_cast<size_t>(g) * R * 2 * kSub * (d / 2), R, d,
                       q.data() + static_cast<size_t>(g) * G * d, G, table.data());
    commvq_scores_codes(table.data(), R, d, G, codes_g.data(), R, norms_f.data(), cs.data(), n,
                        sc.data() + static_cast<size_t>(g) * G * ld, ld);
  }
  for (int h = 0; h < n_head; ++h)
    for (int64_t t = 0; t < nw; ++t) {
      double s = 0;
      for (int i = 0; i < d; ++i)
        s += double(q[static_cast<size_t>(h) * d + i]) * wk[static_cast<size_t>(t * D + (h / G) * d + i)];
      sc[static_cast<size_t>(h * ld + n + t)] = static_cast<float>(s / std::sqrt(double(d)));
    }
  for (int h = 0; h < n_head; ++h)
    softmax_masked(sc.data() + static_cast<size_t>(h) * ld, static_cast<int>(ld), static_cast<int>(ld));
  std::vector<float> want(static_cast<size_t>(n_head) * d);
  const auto p16 = test::to_fp16(p_f);
  for (int g = 0; g < n_kv; ++g)
    commvq_values_attend(vcodes.data(), code_bits / 8, p16.data(), n, code_bits,
                         sc.data() + static_cast<size_t>(g) * G * ld, ld, G, cb.data(), scale.data(), D, g, d,
                         want.data() + static_cast<size_t>(g) * G * d, d);
  for (int h = 0; h < n_head; ++h)
    for (int i = 0; i < d; ++i)
      for (int64_t t = 0; t < nw; ++t)
        want[static_cast<size_t>(h * d + i)] +=
            sc[static_cast<size_t>(h * ld + n + t)] * wv[static_cast<size_t>(t * D + (h / G) * d + i)];

  auto dxy = cuda::upload(xy);
  auto dcodes = cuda::upload(key_codes), dp = cuda::upload(p16);
  auto dnorms = cuda::upload(test::to_fp16(norms_f));
  auto dv = cuda::upload(vcodes);
  auto dcb = cuda::upload(cb), dscale = cuda::upload(scale), dq = cuda::upload(q);
  cuda::DeviceBuffer<uint16_t> dcb16(cb.size());
  cuda::float_to_half(dcb.get(), dcb16.get(), static_cast<int64_t>(cb.size()));
  auto dwk = cuda::upload(test::to_fp16(wk)), dwv = cuda::upload(test::to_fp16(wv));
  auto tables = gpu::make_rope_tables(rope, n + 1);
  cuda::CommvqLayerView v;
  v.n_head = n_head;
  v.n_head_kv = n_kv;
  v.head_dim = d;
  v.half_split = true;
  v.key_stages = R;
  v.key_xy = dxy.get();
  v.key_codes = dcodes.get();
  v.key_norms = dnorms.get();
  v.value_code_bits = code_bits;
  v.value_codes = dv.get();
  v.value_p = dp.get();
  v.value_codebook = dcb.get();
  v.value_codebook16 = dcb16.get();
  v.value_scale = dscale.get();
  v.angles.coarse = tables.coarse.get();
  v.angles.fine = tables.fine.get();
  v.n_tokens = n;
  v.win_k = dwk.get();
  v.win_v = dwv.get();
  v.win_stride = D;
  v.n_window = nw;
  cuda::DeviceBuffer<float> out(want.size());
  cuda::commvq_attend_codes(v, dq.get(), out.get());
  const double scale_out = test::max_abs(want);
  test::expect_close(cuda::download(out.get(), want.size()), want, 1e-4 * scale_out, 1e-4, "attend on codes");

  // Without the window, decode-then-attend (fp16 decoded K/V) computes the same attention.
  v.win_k = v.win_v = nullptr;
  v.n_window = 0;
  cuda::DeviceBuffer<float> out_codes(want.size()), out_dec(want.size());
  cuda::commvq_attend_codes(v, dq.get(), out_codes.get());
  cuda::commvq_attend_decoded(v, dq.get(), out_dec.get());
  const auto a = cuda::download(out_codes.get(), want.size());
  test::expect_close(cuda::download(out_dec.get(), want.size()), a, 2e-3 * test::max_abs(a), 2e-3, "decoded vs codes");
}

}  // namespace
}  // namespace cvq
