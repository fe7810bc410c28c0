// gemv_rows / dot_row at every SIMD level this CPU has, against the double-accumulated reference,
// within the bound documented in kernels/cpu/quant_dot.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/ggml_type.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_dot.h"

namespace cvq {
namespace {

const GgmlType kTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0,
                           GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                           GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

std::string tname(GgmlType t) { return ggml_type_name(static_cast<uint32_t>(t)); }

bool is_float(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

std::vector<SimdLevel> available_levels() {
  std::vector<SimdLevel> out;
  for (SimdLevel l : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
    if (cpu_supports(l)) out.push_back(l);
  }
  return out;
}

void put_half(uint8_t* p, float v) {
  const uint16_t h = float_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// One row of random-but-valid data: random code bytes, fp16 scales of magnitude 0.01..1.
void fill_row(std::mt19937& rng, GgmlType t, int64_t n, uint8_t* row) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> expo(-2.0f, 0.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto scale = [&] { return std::pow(10.0f, expo(rng)) * (byte(rng) & 1 ? 1.0f : -1.0f); };
  if (t == GgmlType::F32) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = normal(rng);
      std::memcpy(row + 4 * i, &v, 4);
    }
    return;
  }
  if (t == GgmlType::F16 || t == GgmlType::BF16) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = normal(rng);
      const uint16_t h = t == GgmlType::F16 ? float_to_fp16(v) : float_to_bf16(v);
      std::memcpy(row + 2 * i, &h, 2);
    }
    return;
  }
  const GgmlTypeInfo info = ggml_type_info(t);
  const size_t bytes = ggml_row_bytes(t, n);
  for (size_t i = 0; i < bytes; ++i) row[i] = static_cast<uint8_t>(byte(rng));
  for (int64_t b = 0; b < n / info.block_elems; ++b) {
    uint8_t* blk = row + b * static_cast<int64_t>(info.block_bytes);
    switch (t) {
      case GgmlType::Q4_0:
      case GgmlType::Q5_0:
      case GgmlType::Q8_0:
        put_half(blk, scale());
        break;
      case GgmlType::Q4_1:
      case GgmlType::Q5_1:
      case GgmlType::Q4_K:
      case GgmlType::Q5_K:
        put_half(blk, scale());
        put_half(blk + 2, scale());
        break;
      case GgmlType::Q6_K:
        put_half(blk + 208, scale());
        break;
      default:
        break;
    }
  }
}

std::vector<float> random_x(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> expo(-3.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t b = 0; b < n; b += 32) {
    const float s = std::pow(10.0f, expo(rng));
    for (int64_t i = b; i < std::min(n, b + 32); ++i) x[static_cast<size_t>(i)] = normal(rng) * s;
  }
  if (n >= 128) {
    std::fill(x.begin() + 64, x.begin() + 96, 0.0f);  // a zero block
    x[100] = 50.0f;                                   // an outlier
  }
  return x;
}

// The documented bound for one row (see quant_dot.h).
double error_bound(GgmlType t, const uint8_t* row, const float* x, int64_t n) {
  std::vector<float> w(static_cast<size_t>(n));
  dequantize_row(t, row, w.data(), n);
  double bound = 0.0;
  for (int64_t b = 0; b < n; b += 32) {
    const int64_t e = std::min(n, b + 32);
    double amax = 0.0;
    for (int64_t i = b; i < e; ++i) amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
    const double step = is_float(t) ? 0.0 : amax / 254.0;
    double wabs = 0.0, wx = 0.0;
    for (int64_t i = b; i < e; ++i) {
      wabs += std::fabs(w[static_cast<size_t>(i)]);
      wx += std::fabs(static_cast<double>(w[static_cast<size_t>(i)])) * (std::fabs(x[i]) + step);
    }
    bound += step * (1.0 + 1e-5) * wabs + 1e-5 * wx;
  }
  return bound + 1e-30;
}

std::vector<int64_t> lengths_for(GgmlType t) {
  if (is_float(t)) return {1, 7, 16, 17, 64, 100, 576, 1000};
  if (ggml_type_info(t).block_elems == 256) return {256, 512, 768, 2304};
  return {32, 64, 96, 288, 576, 1536};  // includes odd block counts (1, 3, 9)
}

TEST(QuantDot, GemvMatchesReferenceAtEveryLevel) {
  std::mt19937 rng(42);
  for (SimdLevel level : available_levels()) {
    for (GgmlType t : kTypes) {
      for (int64_t n : lengths_for(t)) {
        for (int64_t n_rows : {1, 7, 64}) {
          SCOPED_TRACE(std::string(simd_level_name(level)) + " " + tname(t) + " n=" + std::to_string(n) +
                       " rows=" + std::to_string(n_rows));
          const size_t row_bytes = ggml_row_bytes(t, n) + 2;  // a stride larger than the row
          std::vector<uint8_t> w(row_bytes * static_cast<size_t>(n_rows));
          for (int64_t r = 0; r < n_rows; ++r) fill_row(rng, t, n, w.data() + r * row_bytes);
          const std::vector<float> x = random_x(rng, n);
          std::vector<float> y(static_cast<size_t>(n_rows), std::nanf(""));
          gemv_rows_at(level, t, w.data(), row_bytes, n_rows, x.data(), n, y.data());
          for (int64_t r = 0; r < n_rows; ++r) {
            const uint8_t* row = w.data() + r * row_bytes;
            const double ref = dot_row_reference(t, row, x.data(), n);
            const double bound = error_bound(t, row, x.data(), n);
            ASSERT_LE(std::fabs(y[static_cast<size_t>(r)] - ref), bound)
                << "row " << r << ": got " << y[static_cast<size_t>(r)] << ", reference " << ref;
            if (r == 0) {
              EXPECT_EQ(dot_row_at(level, t, row, x.data(), n), y[0]);
            }
          }
        }
      }
    }
  }
}

TEST(QuantDot, TypicalErrorIsAboutOnePerMille) {
  // Not a bound, a sanity check that the activation quantization behaves like llama.cpp's.
  std::mt19937 rng(7);
  const int64_t n = 1536, n_rows = 64;
  for (SimdLevel level : available_levels()) {
    if (level == SimdLevel::Scalar) continue;
    for (GgmlType t : {GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
      const size_t row_bytes = ggml_row_bytes(t, n);
      std::vector<uint8_t> w(row_bytes * n_rows);
      for (int64_t r = 0; r < n_rows; ++r) fill_row(rng, t, n, w.data() + r * row_bytes);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      std::vector<float> x(n);
      for (float& v : x) v = normal(rng);
      std::vector<float> y(n_rows);
      gemv_rows_at(level, t, w.data(), row_bytes, n_rows, x.data(), n, y.data());
      double err = 0.0, mag = 0.0;
      std::vector<float> wf(n);
      for (int64_t r = 0; r < n_rows; ++r) {
        const uint8_t* row = w.data() + r * row_bytes;
        dequantize_row(t, row, wf.data(), n);
        for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(wf[i]) * x[i]);
        err += std::fabs(y[r] - dot_row_reference(t, row, x.data(), n));
      }
      EXPECT_LT(err / mag, 1e-3) << simd_level_name(level) << " " << tname(t);
    }
  }
}

TEST(QuantDot, AllSupportedTypesHaveFastPaths) {
  for (SimdLevel level : {SimdLevel::Avx2, SimdLevel::Avx512}) {
    if (!cpu_supports(level)) continue;
    for (GgmlType t : kTypes) EXPECT_TRUE(gemv_has_fast_path(level, t)) << simd_level_name(level) << " " << tname(t);
  }
  EXPECT_FALSE(gemv_has_fast_path(SimdLevel::Scalar, GgmlType::Q4_0));
}

TEST(QuantDot, DispatchUsesASupportedLevel) {
  const SimdLevel active = active_simd_level();
  EXPECT_TRUE(cpu_supports(active));
  EXPECT_STREQ(simd_level_name(), simd_level_name(active));
  EXPECT_EQ(parse_simd_level("scalar"), SimdLevel::Scalar);
  EXPECT_EQ(parse_simd_level("avx2"), SimdLevel::Avx2);
  EXPECT_EQ(parse_simd_level("avx512"), SimdLevel::Avx512);
  EXPECT_THROW(parse_simd_level("sse9"), Error);
  EXPECT_TRUE(cpu_supports(SimdLevel::Scalar));
  // gemv_rows / dot_row are gemv_rows_at(active_simd_level()).
  std::mt19937 rng(3);
  std::vector<uint8_t> w(ggml_row_bytes(GgmlType::Q4_1, 576) * 3);
  for (int r = 0; r < 3; ++r) fill_row(rng, GgmlType::Q4_1, 576, w.data() + r * (w.size() / 3));
  const std::vector<float> x = random_x(rng, 576);
  float y1[3], y2[3];
  gemv_rows(GgmlType::Q4_1, w.data(), w.size() / 3, 3, x.data(), 576, y1);
  gemv_rows_at(active, GgmlType::Q4_1, w.data(), w.size() / 3, 3, x.data(), 576, y2);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(y1[r], y2[r]);
  EXPECT_EQ(dot_row(GgmlType::Q4_1, w.data(), x.data(), 576), y1[0]);
}

TEST(QuantDot, InvalidArgumentsThrow) {
  std::vector<uint8_t> w(4096);
  std::vector<float> x(512, 1.0f);
  float y[4];
  try {
    gemv_rows(GgmlType::Q2_K, w.data(), 84, 1, x.data(), 256, y);
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q2_K"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dot_row(GgmlType::IQ4_XS, w.data(), x.data(), 256), Error);
  EXPECT_THROW(gemv_rows(GgmlType::Q4_0, w.data(), 18, 1, x.data(), 40, y), Error);  // not whole blocks
  EXPECT_THROW(gemv_rows(GgmlType::Q4_K, w.data(), 144, 1, x.data(), 288, y), Error);
  EXPECT_THROW(gemv_rows(GgmlType::Q4_0, w.data(), 10, 2, x.data(), 32, y), Error);  // stride < row
  EXPECT_THROW(dot_row_reference(GgmlType::Q3_K, w.data(), x.data(), 256), Error);
}

TEST(QuantDot, EmptyShapes) {
  std::vector<uint8_t> w(64);
  std::vector<float> x(32, 1.0f);
  float y[2] = {5.0f, 5.0f};
  gemv_rows(GgmlType::Q8_0, w.data(), 34, 0, x.data(), 32, y);  // no rows: nothing written
  EXPECT_EQ(y[0], 5.0f);
  for (SimdLevel level : available_levels()) {
    gemv_rows_at(level, GgmlType::F32, w.data(), 0, 2, x.data(), 0, y);
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_EQ(y[1], 0.0f);
  }
}

TEST(QuantDot, ZeroActivationGivesZero) {
  std::mt19937 rng(5);
  for (SimdLevel level : available_levels()) {
    for (GgmlType t : kTypes) {
      const int64_t n = 512;
      std::vector<uint8_t> w(ggml_row_bytes(t, n));
      fill_row(rng, t, n, w.data());
      std::vector<float> x(n, 0.0f);
      EXPECT_EQ(dot_row_at(level, t, w.data(), x.data(), n), 0.0f) << simd_level_name(level) << " " << tname(t);
    }
  }
}

}  // namespace
}  // namespace cvq

namespace cvq {
namespace {

// Batched decode's product: every token's values are the single-token gemv's, bit for bit.
TEST(QuantDot, GemvTokensEqualsOneTokenAtATime) {
  std::mt19937 rng(7);
  for (GgmlType t : kTypes) {
    const int64_t n = ggml_type_info(t).block_elems == 256 ? 512 : 288;
    for (int64_t n_rows : {1, 7, 33, 70}) {
      for (int64_t n_tokens : {2, 5, 8, 13, 20}) {
        SCOPED_TRACE(tname(t) + " rows=" + std::to_string(n_rows) + " tokens=" + std::to_string(n_tokens));
        const size_t row_bytes = ggml_row_bytes(t, n);
        std::vector<uint8_t> w(row_bytes * static_cast<size_t>(n_rows));
        for (int64_t r = 0; r < n_rows; ++r) fill_row(rng, t, n, w.data() + r * row_bytes);
        std::vector<float> x;
        for (int64_t k = 0; k < n_tokens; ++k) {
          const std::vector<float> xk = random_x(rng, n);
          x.insert(x.end(), xk.begin(), xk.end());
        }
        const int64_t ld = n_rows + 3;
        std::vector<float> y(static_cast<size_t>(ld * n_tokens), -1.0f), one(static_cast<size_t>(n_rows));
        gemv_tokens(t, w.data(), row_bytes, n_rows, x.data(), n_tokens, n, y.data(), ld);
        for (int64_t k = 0; k < n_tokens; ++k) {
          gemv_rows(t, w.data(), row_bytes, n_rows, x.data() + k * n, n, one.data());
          for (int64_t r = 0; r < n_rows; ++r)
            ASSERT_EQ(y[static_cast<size_t>(k * ld + r)], one[static_cast<size_t>(r)]) << "token " << k << " row " << r;
          for (int64_t r = n_rows; r < ld && k + 1 < n_tokens; ++r)
            EXPECT_EQ(y[static_cast<size_t>(k * ld + r)], -1.0f);
        }
      }
    }
  }
}

}  // namespace
}  // namespace cvq
