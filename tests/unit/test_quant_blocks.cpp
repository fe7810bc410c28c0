// Block layouts against gguf-py (tests/fixtures/quant_blocks.json, made by
// scripts/make-quant-fixture.py) and the reference quantizers' error bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cpu/ggml_type.h"
#include "kernels/cpu/quant_blocks.h"
#include "model/model_paths.h"
#include "support/test_env.h"

namespace cvq {
namespace {

nlohmann::json load_fixture() {
  const std::string path = test::test_source_dir() + "/tests/fixtures/quant_blocks.json";
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  return nlohmann::json::parse(in);
}

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
  return out;
}

TEST(QuantBlocks, DequantizeMatchesGgufPy) {
  const nlohmann::json fx = load_fixture();
  std::vector<GgmlType> seen;
  for (const auto& c : fx.at("dequantize")) {
    const auto t = static_cast<GgmlType>(c.at("ggml_type").get<uint32_t>());
    const int64_t n = c.at("n").get<int64_t>();
    const std::vector<uint8_t> bytes = from_hex(c.at("hex").get<std::string>());
    const std::vector<float> expected = c.at("expected").get<std::vector<float>>();
    SCOPED_TRACE(c.at("type").get<std::string>());
    ASSERT_EQ(static_cast<int64_t>(expected.size()), n);
    ASSERT_EQ(bytes.size(), ggml_row_bytes(t, n));
    ASSERT_TRUE(dequantize_supported(t));
    std::vector<float> got(static_cast<size_t>(n), std::nanf(""));
    dequantize_row(t, bytes.data(), got.data(), n);
    const int64_t block = ggml_type_info(t).block_elems;
    int64_t exact = 0;
    for (int64_t b = 0; b < n; b += block) {
      float block_max = 0.0f;
      for (int64_t i = b; i < b + block; ++i)
        block_max = std::fmax(block_max, std::fabs(expected[static_cast<size_t>(i)]));
      for (int64_t i = b; i < b + block; ++i) {
        const float e = expected[static_cast<size_t>(i)], g = got[static_cast<size_t>(i)];
        // Bit-exact unless the compiler contracted d*q+m into an FMA (e.g. -march=native builds).
        if (std::memcmp(&e, &g, 4) == 0) {
          ++exact;
        } else {
          EXPECT_LE(std::fabs(g - e), 1e-6f * block_max) << "element " << i << ": got " << g << ", want " << e;
        }
      }
    }
    RecordProperty(c.at("type").get<std::string>() + "_exact", static_cast<int>(exact));
    seen.push_back(t);
  }
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                     GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    EXPECT_NE(std::find(seen.begin(), seen.end(), t), seen.end()) << ggml_type_name(static_cast<uint32_t>(t));
  }
}

TEST(QuantBlocks, ReferenceQuantizersMatchGgufPy) {
  const nlohmann::json fx = load_fixture();
  int cases = 0;
  for (const auto& c : fx.at("quantize")) {
    const auto t = static_cast<GgmlType>(c.at("ggml_type").get<uint32_t>());
    const std::vector<float> x = c.at("x").get<std::vector<float>>();
    const std::vector<uint8_t> expected = from_hex(c.at("hex").get<std::string>());
    const auto n = static_cast<int64_t>(x.size());
    ASSERT_EQ(expected.size(), ggml_row_bytes(t, n));
    std::vector<uint8_t> got(expected.size(), 0xAA);
    if (t == GgmlType::Q8_0) {
      quantize_row_q8_0(x.data(), got.data(), n);
    } else if (t == GgmlType::Q4_0) {
      quantize_row_q4_0(x.data(), got.data(), n);
    } else {
      FAIL() << "unexpected type in fixture";
    }
    EXPECT_EQ(got, expected) << c.at("type").get<std::string>();
    ++cases;
  }
  EXPECT_EQ(cases, 2);
}

std::vector<float> random_row(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> expo(-4.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t b = 0; b < n; b += 32) {
    const float scale = std::pow(10.0f, expo(rng));
    for (int64_t i = b; i < b + 32; ++i) x[static_cast<size_t>(i)] = normal(rng) * scale;
  }
  // An all-zero block and a block with one outlier.
  if (n >= 96) {
    std::fill(x.begin() + 32, x.begin() + 64, 0.0f);
    x[70] = 1000.0f;
  }
  return x;
}

TEST(QuantBlocks, Q8_0RoundTripWithinHalfStep) {
  std::mt19937 rng(1);
  for (int rep = 0; rep < 20; ++rep) {
    const int64_t n = 32 * 9;
    const std::vector<float> x = random_row(rng, n);
    std::vector<uint8_t> q(ggml_row_bytes(GgmlType::Q8_0, n));
    quantize_row_q8_0(x.data(), q.data(), n);
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(GgmlType::Q8_0, q.data(), y.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[static_cast<size_t>(32 * b + j)]));
      const float d = amax / 127.0f;
      uint16_t h;
      std::memcpy(&h, q.data() + 34 * b, 2);
      const float d16 = fp16_to_float(h);
      // d/2 from rounding, plus the fp16 rounding of the stored scale (up to 127 steps of it).
      const double bound = 0.5 * d * (1 + 1e-6) + 127.0 * std::fabs(static_cast<double>(d) - d16) + 1e-30;
      for (int j = 0; j < 32; ++j) {
        const size_t i = static_cast<size_t>(32 * b + j);
        EXPECT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound) << "block " << b << " elem " << j;
      }
    }
  }
}

TEST(QuantBlocks, Q4_0RoundTripWithinOneStep) {
  std::mt19937 rng(2);
  for (int rep = 0; rep < 20; ++rep) {
    const int64_t n = 32 * 9;
    const std::vector<float> x = random_row(rng, n);
    std::vector<uint8_t> q(ggml_row_bytes(GgmlType::Q4_0, n));
    quantize_row_q4_0(x.data(), q.data(), n);
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(GgmlType::Q4_0, q.data(), y.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[static_cast<size_t>(32 * b + j)]));
      const double d = amax / 8.0;
      uint16_t h;
      std::memcpy(&h, q.data() + 18 * b, 2);
      const double d16 = std::fabs(fp16_to_float(h));
      const double bound = d * (1 + 1e-6) + 8.0 * std::fabs(d - d16) + 1e-30;
      for (int j = 0; j < 32; ++j) {
        const size_t i = static_cast<size_t>(32 * b + j);
        EXPECT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound) << "block " << b << " elem " << j;
      }
    }
  }
}

TEST(QuantBlocks, ZeroBlockQuantizesToZero) {
  std::vector<float> x(64, 0.0f);
  std::vector<uint8_t> q8(68, 0xFF), q4(36, 0xFF);
  quantize_row_q8_0(x.data(), q8.data(), 64);
  quantize_row_q4_0(x.data(), q4.data(), 64);
  std::vector<float> y(64, 1.0f);
  dequantize_row(GgmlType::Q8_0, q8.data(), y.data(), 64);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  dequantize_row(GgmlType::Q4_0, q4.data(), y.data(), 64);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

TEST(QuantBlocks, UnsupportedTypeThrowsNamingIt) {
  std::vector<uint8_t> bytes(1024);
  std::vector<float> out(256);
  for (GgmlType t : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q8_K, GgmlType::IQ4_NL, GgmlType::Q8_1, GgmlType::I32}) {
    const std::string name = ggml_type_name(static_cast<uint32_t>(t));
    EXPECT_FALSE(dequantize_supported(t)) << name;
    try {
      dequantize_row(t, bytes.data(), out.data(), 256);
      ADD_FAILURE() << "no throw for " << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(dequantize_row(static_cast<GgmlType>(99), bytes.data(), out.data(), 32), Error);
}

TEST(QuantBlocks, RowLengthMustFillBlocks) {
  std::vector<uint8_t> bytes(1024);
  std::vector<float> out(512);
  EXPECT_THROW(dequantize_row(GgmlType::Q4_0, bytes.data(), out.data(), 48), Error);
  EXPECT_THROW(dequantize_row(GgmlType::Q6_K, bytes.data(), out.data(), 288), Error);
  EXPECT_THROW(quantize_row_q8_0(out.data(), bytes.data(), 33), Error);
  EXPECT_THROW(quantize_row_q4_0(out.data(), bytes.data(), 20), Error);
  EXPECT_NO_THROW(dequantize_row(GgmlType::F16, bytes.data(), out.data(), 7));
}

TEST(QuantBlocks, KScaleMinUnpacking) {
  // Sub-blocks 0..3: low 6 bits of bytes 0..3 (scale) and 4..7 (min); 4..7: nibbles of bytes 8..11
  // plus the top 2 bits of bytes 0..3 (scale) / 4..7 (min).
  uint8_t s[12];
  for (int i = 0; i < 12; ++i) s[i] = static_cast<uint8_t>(0x9D + 37 * i);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    k_scale_min(s, j, sc, m);
    if (j < 4) {
      EXPECT_EQ(sc, s[j] & 63);
      EXPECT_EQ(m, s[j + 4] & 63);
    } else {
      EXPECT_EQ(sc, (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
      EXPECT_EQ(m, (s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
    EXPECT_LT(sc, 64);
    EXPECT_LT(m, 64);
  }
}

}  // namespace
}  // namespace cvq
