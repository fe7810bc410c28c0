// gelu_inplace (kernels/cpu/gelu.h) against the exact erf form, on every SIMD level.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "kernels/cpu/gelu.h"

namespace cvq {
namespace {

TEST(Gelu, MatchesTheErfFormWithinTheStatedBound) {
  std::vector<float> x;
  for (int i = -20000; i <= 20000; ++i) x.push_back(static_cast<float>(i) * 5e-4f);  // [-10, 10]
  for (float big : {-60.0f, -20.0f, 15.0f, 80.0f}) x.push_back(big);
  std::vector<float> y = x;
  gelu_inplace(y.data(), static_cast<int64_t>(y.size()) - 3);  // a ragged tail too
  for (size_t i = 0; i + 3 < x.size(); ++i) {
    const double exact = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
    ASSERT_NEAR(y[i], exact, 1e-7 * std::abs(x[i]) + 3e-7 * std::abs(exact) + 1e-7) << "x = " << x[i];
  }
  for (size_t i = x.size() - 3; i < x.size(); ++i) EXPECT_EQ(y[i], x[i]) << "wrote past n";
}

}  // namespace
}  // namespace cvq
