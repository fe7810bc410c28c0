#pragma once
// Speed of one key-EM iteration (factorized E step + M step) on the GPU vs the CPU, on the same
// random unit vectors and parameters, with the losses both report (they must agree).
#include <cstdint>

namespace cvq::gpu {

struct EmBenchResult {
  int64_t tokens = 0;
  int head_dim = 0;
  int iterations = 0;
  double cpu_ms_per_iteration = 0.0, gpu_ms_per_iteration = 0.0;
  double cpu_last_loss = 0.0, gpu_last_loss = 0.0;
};

EmBenchResult bench_key_em(int64_t tokens, int head_dim, int iterations, double tau, uint64_t seed);

}  // namespace cvq::gpu
