// llama.cpp's arithmetic (kernels/cpu/ggml_arith.h). Bit-for-bit agreement with llama.cpp itself is
// the integration test (WikiText8kWithLlamaCppArithmetic: 8,188 of 8,188 argmaxes, same perplexity);
// here: the AVX-512 versions equal the portable ones bit for bit, the pieces mean what they claim,
// and misuse is refused with a clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "commvq/kv_methods.h"
#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/ggml_arith.h"
#include "kv/kv_cache.h"

namespace cvq {
namespace {

bool have_avx512() { return cpu_supports(SimdLevel::Avx512) && detail::ggml_arith_avx512_compiled(); }

std::vector<float> randn(size_t n, float sd, std::mt19937& rng) {
  std::normal_distribution<float> g(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = g(rng);
  return v;
}

// Random Q4_1 (20 B) or Q8_0 (34 B) rows.
std::vector<uint8_t> random_blocks(int64_t rows, int64_t blocks, bool q41, std::mt19937& rng) {
  const size_t bb = q41 ? 20 : 34;
  std::vector<uint8_t> w(static_cast<size_t>(rows * blocks) * bb);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  for (int64_t b = 0; b < rows * blocks; ++b) {
    uint8_t* p = w.data() + b * bb;
    const uint16_t d = float_to_fp16(scale(rng)), m = float_to_fp16(-8.0f * scale(rng));
    std::memcpy(p, &d, 2);
    if (q41) std::memcpy(p + 2, &m, 2);
    for (size_t i = q41 ? 4 : 2; i < bb; ++i) p[i] = static_cast<uint8_t>(q41 ? byte(rng) : byte(rng) % 255 + 1);
  }
  return w;
}

TEST(GgmlArith, QuantizedActivationsFollowTheQ8Rules) {
  std::mt19937 rng(1);
  std::vector<float> x = randn(3 * 64, 2.0f, rng);
  for (int i = 64; i < 96; ++i) x[i] = 0.0f;  // an all-zero block
  GgmlQ8Rows a;
  ggml_quantize_q8(x.data(), 3, 64, a);
  ASSERT_EQ(a.blocks, 2);
  for (int64_t b = 0; b < 6; ++b) {
    float amax = 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    const float d = amax / 127.0f;
    EXPECT_EQ(a.d[b], fp16_to_float(float_to_fp16(d)));
    for (int i = 0; i < 32; ++i) {
      const int q = a.q[b * 32 + i];
      sum += q;
      EXPECT_LE(std::abs(q), 127);
      EXPECT_NEAR(q * d, x[b * 32 + i], d * 0.5f + 1e-6f);
    }
    EXPECT_EQ(a.s[b], fp16_to_float(float_to_fp16(d * static_cast<float>(sum))));
  }
  EXPECT_EQ(a.d[2], 0.0f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(a.q[2 * 32 + i], 0);
  EXPECT_THROW(ggml_quantize_q8(x.data(), 1, 48, a), Error);
}

TEST(GgmlArith, MatmulsAreTheDequantizedProductUpToRounding) {
  std::mt19937 rng(2);
  const int64_t rows = 5, blocks = 4, cols = blocks * 32, tokens = 3;
  const std::vector<float> x = randn(tokens * cols, 1.0f, rng);
  GgmlQ8Rows a;
  ggml_quantize_q8(x.data(), tokens, cols, a);
  for (bool q41 : {true, false}) {
    const std::vector<uint8_t> w = random_blocks(rows, blocks, q41, rng);
    const size_t rb = static_cast<size_t>(blocks) * (q41 ? 20 : 34);
    std::vector<float> y(tokens * rows);
    (q41 ? ggml_matmul_q4_1 : ggml_matmul_q8_0)(w.data(), rb, 0, rows, a, y.data(), rows);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0.0, mag = 0.0;
        for (int64_t b = 0; b < blocks; ++b) {
          const uint8_t* p = w.data() + r * rb + b * (q41 ? 20 : 34);
          uint16_t dh, mh = 0;
          std::memcpy(&dh, p, 2);
          if (q41) std::memcpy(&mh, p + 2, 2);
          for (int i = 0; i < 32; ++i) {
            const double wq =
                q41 ? fp16_to_float(dh) * ((i < 16 ? p[4 + i] & 15 : p[4 + i - 16] >> 4)) + fp16_to_float(mh)
                    : fp16_to_float(dh) * static_cast<int8_t>(p[2 + i]);
            const double aq = static_cast<double>(a.d[t * blocks + b]) * a.q[(t * blocks + b) * 32 + i];
            ref += wq * aq;
            mag += std::fabs(wq * aq);
          }
        }
        EXPECT_NEAR(y[t * rows + r], ref, 1e-3 * mag + 1e-5) << (q41 ? "q4_1" : "q8_0") << " t " << t << " r " << r;
      }
    }
  }
}

TEST(GgmlArith, Avx512EqualsPortableBitForBit) {
  if (!have_avx512()) GTEST_SKIP() << "no AVX-512 here";
  std::mt19937 rng(3);
  for (int64_t tokens : {1, 2, 7}) {
    const int64_t rows = 9, blocks = 6, cols = blocks * 32;
    const std::vector<float> x = randn(tokens * cols, 3.0f, rng);
    GgmlQ8Rows a;
    ggml_quantize_q8(x.data(), tokens, cols, a);
    for (bool q41 : {true, false}) {
      const std::vector<uint8_t> w = random_blocks(rows, blocks, q41, rng);
      const size_t rb = static_cast<size_t>(blocks) * (q41 ? 20 : 34);
      std::vector<float> ys(tokens * rows), yv(tokens * rows);
      (q41 ? detail::ggml_matmul_q4_1_scalar : detail::ggml_matmul_q8_0_scalar)(w.data(), rb, 2, rows, a, ys.data(),
                                                                                rows);
      (q41 ? detail::ggml_matmul_q4_1_avx512 : detail::ggml_matmul_q8_0_avx512)(w.data(), rb, 2, rows, a, yv.data(),
                                                                                rows);
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 2; r < rows; ++r) EXPECT_EQ(ys[t * rows + r], yv[t * rows + r]) << t << " " << r;
      }
    }
  }
  const std::vector<float> g = randn(16 * 5 + 3, 4.0f, rng), u = randn(g.size(), 1.0f, rng);
  std::vector<float> ss(g.size()), sv(g.size());
  detail::ggml_swiglu_scalar(g.data(), u.data(), static_cast<int64_t>(g.size()), ss.data());
  detail::ggml_swiglu_avx512(g.data(), u.data(), static_cast<int64_t>(g.size()), sv.data());
  EXPECT_EQ(ss, sv);
  for (int d : {64, 128}) {
    for (int64_t n : {1, 15, 16, 37}) {
      const std::vector<float> q = randn(d, 1.0f, rng);
      std::vector<float> k = randn(n * d, 1.0f, rng), v = randn(n * d, 1.0f, rng);
      for (float& e : k) e = fp16_to_float(float_to_fp16(e));
      for (float& e : v) e = fp16_to_float(float_to_fp16(e));
      std::vector<float> scratch(2 * 48 + 17 * d), os(d), ov(d);
      detail::ggml_attend_row_scalar(q.data(), k.data(), v.data(), d, n, d, 0.125f, os.data(), scratch.data());
      detail::ggml_attend_row_avx512(q.data(), k.data(), v.data(), d, n, d, 0.125f, ov.data(), scratch.data());
      EXPECT_EQ(os, ov) << "d " << d << " n " << n;
    }
  }
}

TEST(GgmlArith, ExpSwigluAndAttentionMeanWhatTheySay) {
  for (float x = -80.0f; x < 80.0f; x += 0.37f) {
    EXPECT_NEAR(ggml_expf(x), std::exp(x), 3e-7 * std::exp(x)) << x;
  }
  EXPECT_EQ(ggml_expf(-INFINITY), 0.0f);
  EXPECT_EQ(ggml_expf(-1000.0f), 0.0f);
  std::mt19937 rng(4);
  const std::vector<float> g = randn(48, 3.0f, rng), u = randn(48, 1.0f, rng);
  std::vector<float> y(48);
  ggml_swiglu(g.data(), u.data(), 48, y.data());
  for (int i = 0; i < 48; ++i) EXPECT_NEAR(y[i], g[i] / (1.0 + std::exp(-g[i])) * u[i], 1e-5 * (1 + std::fabs(y[i])));
  // Attention against a double-precision softmax: only the f16 roundings of q and p separate them.
  const int d = 64, n = 40;
  const std::vector<float> q = randn(d, 1.0f, rng), k = randn(n * d, 1.0f, rng), v = randn(n * d, 1.0f, rng);
  std::vector<float> out(d), scratch(2 * 48 + 17 * d);
  ggml_attend_row(q.data(), k.data(), v.data(), d, n, d, 0.125f, out.data(), scratch.data());
  std::vector<double> s(n);
  double mx = -1e300, z = 0.0;
  for (int t = 0; t < n; ++t) {
    double dot = 0.0;
    for (int i = 0; i < d; ++i) dot += static_cast<double>(q[i]) * k[t * d + i];
    s[t] = dot * 0.125;
    mx = std::max(mx, s[t]);
  }
  for (int t = 0; t < n; ++t) z += std::exp(s[t] - mx);
  for (int c = 0; c < d; ++c) {
    double ref = 0.0;
    for (int t = 0; t < n; ++t) ref += std::exp(s[t] - mx) / z * v[t * d + c];
    EXPECT_NEAR(out[c], ref, 3e-3);
  }
  EXPECT_THROW(ggml_attend_row(q.data(), k.data(), v.data(), 40, 1, 40, 0.1f, out.data(), scratch.data()), Error);
}

TEST(GgmlArith, TheCacheOptionIsCheckedAndNamed) {
  KvGeometry g;
  g.n_layers = 1;
  g.n_head = 2;
  g.n_head_kv = 1;
  g.head_dim = 64;
  g.rope = Rope(64, 10000.0, RopeLayout::Adjacent);
  EXPECT_TRUE(make_kv_cache("fp16:arith=llamacpp", g)->llamacpp_attention());
  EXPECT_EQ(make_kv_cache("fp16:arith=llamacpp", g)->spec(), "fp16:arith=llamacpp");
  EXPECT_FALSE(make_kv_cache("fp16", g)->llamacpp_attention());
  EXPECT_THROW(make_kv_cache("fp16:arith=exact", g), Error);
  EXPECT_THROW(make_kv_cache("fp16:arith=llamacpp,mode=simulated", g), Error);
  EXPECT_THROW(make_kv_cache("bf16:arith=llamacpp", g), Error);
  Rope scaled(64, 10000.0, RopeLayout::Adjacent, {}, 2.0);
  EXPECT_THROW(scaled.use_llamacpp_arithmetic(), Error);
}

}  // namespace
}  // namespace cvq
