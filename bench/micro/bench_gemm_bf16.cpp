// bf16 GEMM kernels (kernels/cpu/gemm_bf16.h), one thread, on packed operands, at the shapes of a
// prefill chunk of 512 tokens through Qwen2.5-Coder-1.5B's FFN (1536 -> 8960 and 8960 -> 1536), with
// OpenBLAS SGEMM on the same fp32 operands as the baseline measured in the same run.
// Counter FLOP/s = 2·T·K·N / time. Also the packing (fp32 rows -> packed bf16) per weight element.
//   micro_bench --benchmark_filter=Bf16
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

#include "kernels/cpu/gemm_bf16.h"

namespace {

struct Shapes {
  int64_t T, K, N;
};

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

void BM_GemmBf16(benchmark::State& state) {
  const auto kernel = static_cast<cvq::Bf16Kernel>(state.range(0));
  const Shapes s{state.range(1), state.range(2), state.range(3)};
  if (!cvq::bf16_kernel_available(kernel)) {
    state.SkipWithError("kernel not available on this CPU");
    return;
  }
  const auto x = random_floats(static_cast<size_t>(s.T * s.K), 1);
  const auto w = random_floats(static_cast<size_t>(s.N * s.K), 2);
  std::vector<uint16_t> xb(static_cast<size_t>(cvq::bf16_padded_tokens(s.T) * s.K));
  cvq::convert_rows_bf16(x.data(), s.K, s.T, s.K, 0, s.T, xb.data());
  std::vector<uint16_t> packed(cvq::bf16_packed_elements(s.N, s.K));
  cvq::pack_bf16_rows(w.data(), s.K, s.N, s.K, packed.data());
  std::vector<float> y(static_cast<size_t>(s.T * s.N));
  for (auto _ : state) {
    cvq::gemm_bf16(kernel, xb.data(), s.T, s.K, packed.data(), s.N, y.data(), s.N);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(cvq::bf16_kernel_name(kernel));
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * s.T * s.K * s.N, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_SgemmBaseline(benchmark::State& state) {
  const Shapes s{state.range(0), state.range(1), state.range(2)};
  openblas_set_num_threads(1);
  const auto x = random_floats(static_cast<size_t>(s.T * s.K), 1);
  const auto w = random_floats(static_cast<size_t>(s.N * s.K), 2);
  std::vector<float> y(static_cast<size_t>(s.T * s.N));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(s.T), static_cast<int>(s.N),
                static_cast<int>(s.K), 1.0f, x.data(), static_cast<int>(s.K), w.data(), static_cast<int>(s.K), 0.0f,
                y.data(), static_cast<int>(s.N));
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * s.T * s.K * s.N, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_PackBf16(benchmark::State& state) {
  const int64_t N = 64, K = state.range(0);
  const auto w = random_floats(static_cast<size_t>(N * K), 3);
  std::vector<uint16_t> packed(cvq::bf16_packed_elements(N, K));
  for (auto _ : state) {
    cvq::pack_bf16_rows(w.data(), K, N, K, packed.data());
    benchmark::DoNotOptimize(packed.data());
  }
  state.counters["weights/s"] = benchmark::Counter(double(N * K), benchmark::Counter::kIsIterationInvariantRate);
}

// A 64-row tile (what one WeightMatrix task computes) against 512 tokens.
void shapes(benchmark::internal::Benchmark* b) {
  for (int k = 0; k <= 2; ++k) {
    b->Args({k, 512, 1536, 64});
    b->Args({k, 512, 8960, 64});
  }
}
BENCHMARK(BM_GemmBf16)->Apply(shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SgemmBaseline)->Args({512, 1536, 64})->Args({512, 8960, 64})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PackBf16)->Arg(1536)->Arg(8960)->Unit(benchmark::kMicrosecond);

}  // namespace
