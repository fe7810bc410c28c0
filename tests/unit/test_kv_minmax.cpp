// Min-max quantization (KIVI) round trip and 32-bit word bit packing.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kv/minmax_quant.h"

namespace cvq {
namespace {

TEST(KvMinMax, PackingIsLsbFirstIn32BitWords) {
  for (int bits : {1, 2, 4}) {
    for (int n : {8, 16, 32, 48, 64, 128}) {
      const int levels = (1 << bits) - 1;
      std::vector<float> x(n);
      for (int i = 0; i < n; ++i) x[i] = static_cast<float>((i * 7 + 3) % (levels + 1));
      x[0] = 0.0f;
      x[1] = static_cast<float>(levels);  // min 0, max levels: scale exactly 1, zero 0 -> codes = x
      std::vector<uint32_t> words(packed_words(n, bits) + 1, 0xDEADBEEFu);
      uint16_t s, z;
      minmax_quantize_pack(x.data(), 1, n, bits, words.data(), &s, &z);
      ASSERT_EQ(fp16_to_float(s), 1.0f);
      ASSERT_EQ(fp16_to_float(z), 0.0f);
      const int per = 32 / bits;
      for (int w = 0; w < packed_words(n, bits); ++w) {
        uint32_t expect = 0;
        for (int j = 0; j < per && w * per + j < n; ++j) expect |= static_cast<uint32_t>(x[w * per + j]) << (bits * j);
        EXPECT_EQ(words[w], expect) << "bits " << bits << " n " << n << " word " << w;
      }
      EXPECT_EQ(words[packed_words(n, bits)], 0xDEADBEEFu) << "wrote past the group";
      std::vector<float> y(n);
      minmax_dequantize(words.data(), n, bits, s, z, y.data(), 1);
      for (int i = 0; i < n; ++i) EXPECT_EQ(y[i], x[i]);
    }
  }
  EXPECT_EQ(packed_words(32, 2), 2);
  EXPECT_EQ(packed_words(32, 1), 1);
  EXPECT_EQ(packed_words(8, 2), 1);
  EXPECT_EQ(packed_words(48, 4), 6);
}

TEST(KvMinMax, RoundTripWithinHalfAStep) {
  std::mt19937 rng(7);
  for (int bits : {1, 2, 4}) {
    for (int trial = 0; trial < 200; ++trial) {
      const int n = 32;
      const float offset = std::uniform_real_distribution<float>(-20.0f, 20.0f)(rng);
      const float spread = std::exp(std::uniform_real_distribution<float>(-6.0f, 3.0f)(rng));
      std::vector<float> x(n * 3);  // strided: every third element
      for (auto& v : x) v = offset + spread * std::normal_distribution<float>()(rng);
      std::vector<uint32_t> words(packed_words(n, bits));
      uint16_t s, z;
      minmax_quantize_pack(x.data(), 3, n, bits, words.data(), &s, &z);
      std::vector<float> y(n * 3, 0.0f);
      minmax_dequantize(words.data(), n, bits, s, z, y.data(), 3);
      float mn = x[0], mx = x[0];
      for (int i = 0; i < n; ++i) {
        mn = std::min(mn, x[i * 3]);
        mx = std::max(mx, x[i * 3]);
      }
      const float step = fp16_to_float(s);
      const float bound =
          0.5f * step + std::ldexp(1.0f, -11) * (std::fabs(mn) + (mx - mn)) + 1e-6f * std::fabs(mx) + 1e-7f;
      for (int i = 0; i < n; ++i) {
        ASSERT_LE(std::fabs(y[i * 3] - x[i * 3]), bound) << "bits " << bits << " trial " << trial << " i " << i;
        ASSERT_EQ(y[i * 3 + 1], 0.0f);  // stride respected
      }
      // The extremes are represented (to fp16 precision of the parameters).
      EXPECT_NEAR(fp16_to_float(z), mn, std::ldexp(std::fabs(mn), -10) + 1e-7f);
    }
  }
}

TEST(KvMinMax, ConstantAndTinyGroupsGiveNoNaN) {
  for (float c : {0.0f, 1.5f, -3.25f, 1e-9f}) {
    for (int bits : {1, 2, 4}) {
      std::vector<float> x(32, c);
      if (c == 1e-9f) x[5] = 2e-9f;  // a range far below fp16 resolution
      std::vector<uint32_t> words(packed_words(32, bits));
      uint16_t s, z;
      minmax_quantize_pack(x.data(), 1, 32, bits, words.data(), &s, &z);
      std::vector<float> y(32);
      minmax_dequantize(words.data(), 32, bits, s, z, y.data(), 1);
      for (int i = 0; i < 32; ++i) {
        ASSERT_TRUE(std::isfinite(y[i]));
        EXPECT_NEAR(y[i], x[i], std::ldexp(std::fabs(c), -10) + 1e-7f);
      }
    }
  }
}

}  // namespace
}  // namespace cvq
