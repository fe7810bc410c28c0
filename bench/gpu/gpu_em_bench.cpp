#include "bench/gpu/gpu_em_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "commvq/key_em.h"
#include "core/error.h"
#include "device/device.h"
#include "gpu/key_em_gpu.h"

namespace cvq::gpu {

EmBenchResult bench_key_em(int64_t tokens, int head_dim, int iterations, double tau, uint64_t seed) {
  require_cuda("bench gpu-em");
  if (tokens <= 0 || iterations <= 0) throw Error("bench gpu-em: tokens and iterations must be positive");
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens) * head_dim);
  for (int64_t i = 0; i < tokens; ++i) {  // unit vectors, as the normalized keys EM trains on
    double s = 0;
    float* v = x.data() + i * head_dim;
    for (int k = 0; k < head_dim; ++k) {
      v[k] = normal(rng);
      s += double(v[k]) * v[k];
    }
    for (int k = 0; k < head_dim; ++k) v[k] = static_cast<float>(v[k] / std::sqrt(s));
  }
  constexpr double kCutoff = 30.0, kRidge = 1e-6;
  KeyStageEm cpu(x.data(), nullptr, tokens, head_dim, true);
  cpu.init_random(seed, std::min<int64_t>(tokens, 1024), 1.0, kCutoff, kRidge);
  GpuKeyStageEm gpu(x.data(), nullptr, tokens, head_dim);
  gpu.set_params(cpu.x(), cpu.y());
  EmBenchResult r;
  r.tokens = tokens;
  r.head_dim = head_dim;
  r.iterations = iterations;
  using clock = std::chrono::steady_clock;
  gpu.e_step(tau, kCutoff);  // warm-up: cuBLAS handles, buffers
  gpu.set_params(cpu.x(), cpu.y());
  auto t0 = clock::now();
  for (int k = 0; k < iterations; ++k) {
    r.cpu_last_loss = cpu.e_step(tau, kCutoff);
    cpu.m_step(kRidge);
  }
  auto t1 = clock::now();
  for (int k = 0; k < iterations; ++k) {
    r.gpu_last_loss = gpu.e_step(tau, kCutoff);
    gpu.m_step(kRidge);
  }
  auto t2 = clock::now();
  r.cpu_ms_per_iteration = std::chrono::duration<double, std::milli>(t1 - t0).count() / iterations;
  r.gpu_ms_per_iteration = std::chrono::duration<double, std::milli>(t2 - t1).count() / iterations;
  return r;
}

}  // namespace cvq::gpu
