#include "gpu/rope_tables.h"

#include "kernels/cuda/commvq_scores_gpu.h"

namespace cvq::gpu {

std::vector<float> cos_sin_rows(const Rope& rope, const int32_t* positions, int n) {
  const int d = rope.head_dim(), h = d / 2;
  std::vector<float> out(static_cast<size_t>(n) * d);
  for (int i = 0; i < n; ++i)
    rope.angles(positions[i], out.data() + static_cast<size_t>(i) * d, out.data() + static_cast<size_t>(i) * d + h);
  return out;
}

RopeTablesGpu make_rope_tables(const Rope& rope, int64_t max_positions) {
  const int steps = cuda::kRopeFineSteps;
  const int64_t n_coarse = (max_positions + steps - 1) / steps + 1;
  std::vector<int32_t> pos(static_cast<size_t>(std::max<int64_t>(n_coarse, steps)));
  for (int64_t i = 0; i < n_coarse; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(i * steps);
  RopeTablesGpu t;
  t.coarse = cuda::upload(cos_sin_rows(rope, pos.data(), static_cast<int>(n_coarse)));
  for (int i = 0; i < steps; ++i) pos[static_cast<size_t>(i)] = i;
  t.fine = cuda::upload(cos_sin_rows(rope, pos.data(), steps));
  return t;
}

}  // namespace cvq::gpu
