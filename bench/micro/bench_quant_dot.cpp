// gemv_rows throughput, one thread, per weight type and SIMD level, at the default model's shapes:
// 1536x576 (an FFN matrix of SmolLM2-135M) and 49152x576 (its tied output / token embedding), plus
// 576x1536 (FFN down) for the K formats, whose rows must be multiples of 256.
// Counters: bytes_per_second = weight bytes streamed, rows/s.
//   micro_bench --benchmark_filter=Gemv
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/fp16.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/ggml_type.h"
#include "kernels/cpu/quant_dot.h"

namespace {

using cvq::GgmlType;
using cvq::SimdLevel;

// Cheap deterministic pseudo-random numbers (the matrices are up to 113 MB).
struct Lcg {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  }
  float uniform() { return static_cast<float>(next()) * (2.0f / 2147483648.0f) - 1.0f; }  // [-1, 1)
};

struct Matrix {
  std::vector<uint8_t> bytes;
  size_t row_bytes = 0;
};

// Random rows with sane fp16 scales; built once per (type, shape) and shared by the levels.
const Matrix& matrix(GgmlType t, int64_t rows, int64_t n) {
  static std::map<std::tuple<uint32_t, int64_t, int64_t>, std::unique_ptr<Matrix>> cache;
  auto& slot = cache[{static_cast<uint32_t>(t), rows, n}];
  if (slot) return *slot;
  slot = std::make_unique<Matrix>();
  Matrix& m = *slot;
  m.row_bytes = cvq::ggml_row_bytes(t, n);
  m.bytes.resize(m.row_bytes * static_cast<size_t>(rows));
  Lcg rng{static_cast<uint64_t>(t) * 7919 + 1};
  if (t == GgmlType::F32) {
    float* f = reinterpret_cast<float*>(m.bytes.data());
    for (size_t i = 0; i < m.bytes.size() / 4; ++i) f[i] = rng.uniform() * 0.05f;
    return m;
  }
  for (uint8_t& b : m.bytes) b = static_cast<uint8_t>(rng.next());
  const cvq::GgmlTypeInfo info = cvq::ggml_type_info(t);
  const int64_t blocks = static_cast<int64_t>(m.bytes.size() / info.block_bytes);
  for (int64_t b = 0; b < blocks; ++b) {
    uint8_t* blk = m.bytes.data() + b * static_cast<int64_t>(info.block_bytes);
    const uint16_t d = cvq::float_to_fp16(0.01f + 0.02f * (rng.uniform() + 1.0f));
    const uint16_t mn = cvq::float_to_fp16(-0.1f * (rng.uniform() + 1.0f));
    std::memcpy(blk, &d, 2);
    if (t == GgmlType::Q4_1 || t == GgmlType::Q5_1 || t == GgmlType::Q4_K || t == GgmlType::Q5_K) {
      std::memcpy(blk + 2, &mn, 2);
    }
  }
  return m;
}

void BM_Gemv(benchmark::State& state, GgmlType t, SimdLevel level, int64_t rows, int64_t n) {
  if (!cvq::cpu_supports(level)) {
    state.SkipWithError("SIMD level not supported by this CPU");
    return;
  }
  const Matrix& m = matrix(t, rows, n);
  std::vector<float> x(static_cast<size_t>(n));
  Lcg rng{12345};
  for (float& v : x) v = rng.uniform();
  std::vector<float> y(static_cast<size_t>(rows));
  for (auto _ : state) {
    cvq::gemv_rows_at(level, t, m.bytes.data(), m.row_bytes, rows, x.data(), n, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(m.bytes.size()));
  state.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(rows), benchmark::Counter::kIsIterationInvariantRate);
}

int register_benchmarks() {
  for (GgmlType t : {GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::F32}) {
    for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
      for (auto [rows, n] : {std::pair<int64_t, int64_t>{1536, 576}, {49152, 576}}) {
        const std::string name = std::string("Gemv/") + cvq::ggml_type_name(static_cast<uint32_t>(t)) + "/" +
                                 cvq::simd_level_name(level) + "/" + std::to_string(rows) + "x" + std::to_string(n);
        benchmark::RegisterBenchmark(name.c_str(), BM_Gemv, t, level, rows, n)->Unit(benchmark::kMicrosecond);
      }
    }
  }
  // The K formats need rows that are a multiple of 256: the FFN down-projection shape.
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_0}) {
    for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
      const std::string name = std::string("Gemv/") + cvq::ggml_type_name(static_cast<uint32_t>(t)) + "/" +
                               cvq::simd_level_name(level) + "/576x1536";
      benchmark::RegisterBenchmark(name.c_str(), BM_Gemv, t, level, 576, 1536)->Unit(benchmark::kMicrosecond);
    }
  }
  return 0;
}

const int registered = register_benchmarks();

}  // namespace
