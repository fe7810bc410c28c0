#pragma once
// Host-side cos/sin tables for the device kernels, computed with Rope::angles (double), so the GPU
// rotates by exactly the floats the CPU uses.
#include <cstdint>
#include <vector>

#include "kernels/cpu/rope.h"
#include "kernels/cuda/device_memory.h"

namespace cvq::gpu {

// n rows of head_dim floats: cos(pos_i·ω_f) for f < d/2, then sin.
std::vector<float> cos_sin_rows(const Rope& rope, const int32_t* positions, int n);

// Coarse/fine tables for positions < max_positions (kernels/cuda/commvq_scores_gpu.h CosSinSource).
struct RopeTablesGpu {
  cuda::DeviceBuffer<float> coarse, fine;
};
RopeTablesGpu make_rope_tables(const Rope& rope, int64_t max_positions);

}  // namespace cvq::gpu
