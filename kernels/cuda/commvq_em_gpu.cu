#include <cublas_v2.h>
#include <string>

#include "kernels/cuda/commvq_em_gpu.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_memory.h"

namespace cvq::cuda {
namespace {

constexpr int kCodes = 4096;
constexpr int kPerLane = kCodes / 32;
constexpr int kWarps = 4;

// Per warp: distances of one vector, minimum (first index), as the CPU kernels compute them
// (offset + gfull + p + q, in that order).
__device__ inline void warp_min(const float* gfull, const float* pq, float offset, int lane, float* best, int* best_i) {
  float m = INFINITY;
  int mi = kCodes;
  for (int k = 0; k < kPerLane; ++k) {
    const int c = k * 32 + lane;
    const float v = offset + gfull[c] + pq[c >> 6] + pq[64 + (c & 63)];
    if (v < m) {  // c increases along k: the first minimum of this lane is kept
      m = v;
      mi = c;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, m, o);
    const int oi = __shfl_xor_sync(0xffffffffu, mi, o);
    if (om < m || (om == m && oi < mi)) {
      m = om;
      mi = oi;
    }
  }
  *best = m;
  *best_i = mi;
}

__global__ void assign_kernel(const float* gfull, const float* pq_all, const float* xx, const float* lw, int64_t n,
                              float tau, float cutoff, double* counts, float* wab, double* loss) {
  const int lane = threadIdx.x & 31;
  const int64_t i = blockIdx.x * static_cast<int64_t>(kWarps) + (threadIdx.x >> 5);
  if (i >= n) return;
  const float* pq = pq_all + i * 128;
  float dmin2;
  int imin;
  warp_min(gfull, pq, xx[i], lane, &dmin2, &imin);
  const float dmin = sqrtf(fmaxf(dmin2, 0.0f));
  const float lim = dmin + cutoff * tau;
  const float t2 = fmaxf(lim * lim, dmin2);
  const float inv_tau = 1.0f / tau;
  float z = 0.0f;
  for (int k = 0; k < kPerLane; ++k) {
    const int c = k * 32 + lane;
    const float v = xx[i] + gfull[c] + pq[c >> 6] + pq[64 + (c & 63)];
    if (v <= t2) z += expf((dmin - sqrtf(fmaxf(v, 0.0f))) * inv_tau);
  }
  for (int o = 16; o > 0; o >>= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
  float* wa = wab + i * 128;
  wa[lane] = 0.0f;
  wa[lane + 32] = 0.0f;
  wa[lane + 64] = 0.0f;
  wa[lane + 96] = 0.0f;
  __syncwarp();
  const float inv_z = 1.0f / z;
  for (int k = 0; k < kPerLane; ++k) {
    const int c = k * 32 + lane;
    const float v = xx[i] + gfull[c] + pq[c >> 6] + pq[64 + (c & 63)];
    if (v <= t2) {
      const float w = expf((dmin - sqrtf(fmaxf(v, 0.0f))) * inv_tau) * inv_z;
      atomicAdd(counts + c, static_cast<double>(w));
      atomicAdd(wa + (c >> 6), w);
      atomicAdd(wa + 64 + (c & 63), w);
    }
  }
  if (lane == 0) atomicAdd(loss, static_cast<double>(lw[i]) * fmaxf(dmin2, 0.0f));
}

__global__ void argmin_kernel(const float* gfull, const float* pq_all, const float* xx, const float* lw, int64_t n,
                              int32_t* index, double* loss) {
  const int lane = threadIdx.x & 31;
  const int64_t i = blockIdx.x * static_cast<int64_t>(kWarps) + (threadIdx.x >> 5);
  if (i >= n) return;
  float dmin2;
  int imin;
  warp_min(gfull, pq_all + i * 128, xx[i], lane, &dmin2, &imin);
  if (lane == 0) {
    if (index) index[i] = imin;
    if (loss) atomicAdd(loss, static_cast<double>(lw[i]) * fmaxf(dmin2, 0.0f));
  }
}

}  // namespace

void commvq_em_assign(const float* gfull, const float* pq, const float* xx, const float* loss_weight, int64_t n,
                      float tau, float cutoff, double* counts, float* wab, double* loss) {
  if (n <= 0) return;
  assign_kernel<<<blocks_for(n, kWarps), 32 * kWarps>>>(gfull, pq, xx, loss_weight, n, tau, cutoff, counts, wab, loss);
  check_launch("commvq_em_assign");
}

void commvq_em_argmin(const float* gfull, const float* pq, const float* xx, const float* loss_weight, int64_t n,
                      int32_t* index, double* loss) {
  if (n <= 0) return;
  argmin_kernel<<<blocks_for(n, kWarps), 32 * kWarps>>>(gfull, pq, xx, loss_weight, n, index, loss);
  check_launch("commvq_em_argmin");
}

void solve_dense(double* h, int m, double* g, int k) {
  DeviceBuffer<double*> ptrs(2);
  DeviceBuffer<int> pivots(static_cast<size_t>(m)), info(1);
  double* host_ptrs[2] = {h, g};
  copy_to_device(ptrs.get(), host_ptrs, sizeof host_ptrs);
  check(cublasDgetrfBatched(cublas_handle(), m, ptrs.get(), m, pivots.get(), info.get(), 1), "cublasDgetrfBatched");
  int host_info = 0;
  copy_to_host(&host_info, info.get(), sizeof host_info);
  if (host_info != 0)
    throw Error("commvq key EM (cuda): the M-step system is singular (LU info " + std::to_string(host_info) + ")");
  int rs_info = 0;
  check(cublasDgetrsBatched(cublas_handle(), CUBLAS_OP_N, m, k, ptrs.get(), m, pivots.get(), ptrs.get() + 1, m,
                            &rs_info, 1),
        "cublasDgetrsBatched");
  if (rs_info != 0) throw Error("commvq key EM (cuda): bad argument to the M-step solve");
  synchronize();
}

}  // namespace cvq::cuda
