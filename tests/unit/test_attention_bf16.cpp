// Prefill attention products in bf16 (kernels/cpu/attention_bf16.h) equal the double-precision
// products of the bf16-rounded operands, for ragged token ranges; and a cache attending a prefill in
// bf16 stays within bf16 rounding of the fp32 attention.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "commvq/kv_methods.h"
#include "core/fp16.h"
#include "kernels/cpu/attention_bf16.h"
#include "kv/kv_cache.h"

namespace cvq {
namespace {

float r16(float x) { return bf16_to_float(float_to_bf16(x)); }

TEST(AttentionBf16, ScoresAndValuesMatchTheRoundedProducts) {
  const int H = 2, d = 64, N = 150, rows = 7;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> k(static_cast<size_t>(H) * N * d), v(k.size()), q(static_cast<size_t>(rows) * d),
      p(static_cast<size_t>(rows) * N);
  for (auto* vec : {&k, &v, &q})
    for (auto& x : *vec) x = nd(rng);
  for (auto& x : p) x = std::abs(nd(rng)) * 0.1f;
  PackedKvBf16 packed;
  packed.pack(k.data(), N * d, d, N, v.data(), N * d, d, N, H, d);
  const float scale = 0.125f;
  for (int head = 0; head < H; ++head) {
    for (auto [t0, n] : {std::pair<int64_t, int64_t>{0, 150}, {16, 37}, {64, 86}, {144, 6}}) {
      std::vector<float> sc(static_cast<size_t>(rows) * n);
      packed.scores(head, q.data(), rows, scale, t0, n, sc.data(), n);
      for (int r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < n; ++j) {
          double ref = 0, mag = 0;
          for (int c = 0; c < d; ++c) {
            const double a = r16(q[r * d + c] * scale), b = r16(k[(head * N + t0 + j) * d + c]);
            ref += a * b;
            mag += std::abs(a * b);
          }
          ASSERT_NEAR(sc[r * n + j], ref, 1e-5 * mag + 1e-30) << "head " << head << " t0 " << t0 << " j " << j;
        }
      }
    }
    for (auto [t0, n] : {std::pair<int64_t, int64_t>{0, 150}, {2, 33}, {40, 110}, {148, 2}}) {
      std::vector<float> out(static_cast<size_t>(rows) * d, 1.0f);
      packed.values(head, p.data(), N, rows, t0, n, out.data());
      for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < d; ++c) {
          double ref = 1.0, mag = 1.0;
          for (int64_t j = 0; j < n; ++j) {
            const double a = r16(p[r * N + j]), b = r16(v[(head * N + t0 + j) * d + c]);
            ref += a * b;
            mag += std::abs(a * b);
          }
          ASSERT_NEAR(out[r * d + c], ref, 1e-5 * mag) << "head " << head << " t0 " << t0 << " c " << c;
        }
      }
    }
  }
}

TEST(AttentionBf16, CachePrefillInBf16IsCloseToFp32) {
  KvGeometry g;
  g.n_layers = 1;
  g.n_head = 6;
  g.n_head_kv = 2;
  g.head_dim = 64;
  g.rope = Rope(64, 10000.0, RopeLayout::HalfSplit);
  const int n = 300, D = g.kv_dim(), Q = g.q_dim();
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> k(static_cast<size_t>(n) * D), v(k.size()), q(static_cast<size_t>(n) * Q);
  for (auto* vec : {&k, &v, &q})
    for (auto& x : *vec) x = nd(rng);
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  for (const char* spec : {"fp16", "kivi:k=2,v=2", "kvquant:bits=2,calib=none"}) {
    std::vector<float> out32(q.size()), out16(q.size());
    auto a = make_kv_cache(spec, g), b = make_kv_cache(spec, g);
    b->set_bf16_prefill_attention(true);
    a->append(0, k.data(), v.data(), pos.data(), n);
    b->append(0, k.data(), v.data(), pos.data(), n);
    a->attend(0, q.data(), pos.data(), n, out32.data());
    b->attend(0, q.data(), pos.data(), n, out16.data());
    double err = 0, ref = 0;
    for (size_t i = 0; i < q.size(); ++i) {
      err += (out16[i] - out32[i]) * (out16[i] - out32[i]);
      ref += out32[i] * out32[i];
    }
    const double rel = std::sqrt(err / ref);
    EXPECT_LT(rel, 2e-2) << spec;
    EXPECT_GT(rel, 0.0) << spec << ": the bf16 path did not run";
  }
}

}  // namespace
}  // namespace cvq
