// The bf16 GEMM (kernels/cpu/gemm_bf16.h): every kernel this CPU has equals the double-precision
// product of the same bf16 operands to float rounding, over ragged token and row counts.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/cpu/gemm_bf16.h"

namespace cvq {
namespace {

struct Operands {
  std::vector<uint16_t> x, packed;
  std::vector<float> w;
};

Operands make(int64_t T, int64_t K, int64_t N, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Operands o;
  std::vector<float> xf(static_cast<size_t>(T * K));
  for (auto& v : xf) v = nd(rng);
  o.w.resize(static_cast<size_t>(N * K));
  for (auto& v : o.w) v = nd(rng) * 0.05f;
  o.x.assign(static_cast<size_t>(bf16_padded_tokens(T) * K), 0xffff);  // padding must be overwritten
  convert_rows_bf16(xf.data(), K, T, K, 0, T, o.x.data());
  o.packed.resize(bf16_packed_elements(N, K));
  pack_bf16_rows(o.w.data(), K, N, K, o.packed.data());
  return o;
}

TEST(GemmBf16, PackedLayoutHoldsRoundedRowsInPairs) {
  const int64_t K = 64, N = 20;
  Operands o = make(1, K, N, 1);
  for (int64_t r = 0; r < 32; ++r) {
    for (int64_t k = 0; k < K; ++k) {
      const uint16_t got = o.packed[(r / 16) * 16 * K + ((k / 2) * 16 + r % 16) * 2 + k % 2];
      const uint16_t want = r < N ? float_to_bf16(o.w[r * K + k]) : 0;
      ASSERT_EQ(got, want) << "row " << r << " k " << k;
    }
  }
  for (int64_t i = K; i < bf16_padded_tokens(1) * K; ++i) ASSERT_EQ(o.x[i], 0) << "padding row element " << i;
}

TEST(GemmBf16, EveryAvailableKernelMatchesTheReference) {
  int kernels_run = 0;
  for (Bf16Kernel kernel : {Bf16Kernel::Fallback, Bf16Kernel::Avx512Bf16, Bf16Kernel::Amx}) {
    if (!bf16_kernel_available(kernel)) {
      std::printf("  (%s: not available on this CPU)\n", bf16_kernel_name(kernel));
      continue;
    }
    ++kernels_run;
    for (int64_t T : {1, 5, 6, 7, 16, 31, 33, 70}) {
      for (int64_t K : {32, 96, 576}) {
        for (int64_t N : {1, 15, 16, 17, 48, 64, 65, 100}) {
          Operands o = make(T, K, N, static_cast<uint32_t>(T * 1000 + K * 7 + N));
          const int64_t ldy = N + 3;
          std::vector<float> y(static_cast<size_t>(T * ldy), -777.0f);
          gemm_bf16(kernel, o.x.data(), T, K, o.packed.data(), N, y.data(), ldy);
          for (int64_t t = 0; t < T; ++t) {
            for (int64_t n = 0; n < ldy; ++n) {
              const float got = y[t * ldy + n];
              if (n >= N) {
                ASSERT_EQ(got, -777.0f) << "wrote past the rows";
                continue;
              }
              double mag = 0.0;
              for (int64_t k = 0; k < K; ++k) {
                mag += std::fabs(double(bf16_to_float(o.x[t * K + k])) * bf16_to_float(float_to_bf16(o.w[n * K + k])));
              }
              const double ref = gemm_bf16_reference(o.x.data() + t * K, K, o.packed.data(), n);
              ASSERT_NEAR(got, ref, 1e-5 * mag + 1e-30)
                  << bf16_kernel_name(kernel) << " T=" << T << " K=" << K << " N=" << N << " t=" << t << " n=" << n;
            }
          }
        }
      }
    }
  }
  EXPECT_GE(kernels_run, 1);
}

TEST(GemmBf16, RefusesKNotAMultipleOf32) {
  Operands o = make(2, 32, 16, 3);
  std::vector<float> y(64);
  EXPECT_THROW(gemm_bf16(Bf16Kernel::Fallback, o.x.data(), 2, 30, o.packed.data(), 16, y.data(), 16), std::exception);
}

}  // namespace
}  // namespace cvq
