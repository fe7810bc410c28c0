#pragma once
// Shared by the GPU tests: skip (never pass vacuously) when no CUDA device can be used, random
// inputs, and closeness checks with a stated tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "device/device.h"

#define CVQ_NEED_GPU()                                               \
  do {                                                               \
    const std::string why_ = ::cvq::cuda_unavailable_reason();       \
    if (!why_.empty()) GTEST_SKIP() << "GPU test skipped: " << why_; \
  } while (0)

namespace cvq::test {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Values exactly representable in fp16 (so both backends start from the same numbers).
inline std::vector<float> fp16_rounded(std::vector<float> v) {
  for (auto& x : v) x = fp16_to_float(float_to_fp16(x));
  return v;
}

inline std::vector<uint16_t> to_fp16(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_fp16(v[i]);
  return h;
}

inline double max_abs(const std::vector<float>& v) {
  double m = 0.0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

// |got − want| <= atol + rtol·|want| elementwise; reports the first few failures.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double atol, double rtol,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    const double tol = atol + rtol * std::fabs(want[i]);
    if (!(std::fabs(double(got[i]) - want[i]) <= tol)) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " (tol " << tol << ")";
      ++bad;
    }
  }
}

}  // namespace cvq::test
