#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/norm_act_gpu.h"

namespace cvq::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void rmsnorm_kernel(const float* x, const float* w, int64_t dim, float eps, float* y) {
  const float* xr = x + blockIdx.x * dim;
  float* yr = y + blockIdx.x * dim;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += static_cast<double>(xr[i]) * xr[i];
  __shared__ double part[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_down_sync(0xffffffffu, ss, o);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
  __syncthreads();
  __shared__ float scale;
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int i = 0; i < kThreads / 32; ++i) t += part[i];
    scale = static_cast<float>(1.0 / sqrt(t / static_cast<double>(dim) + eps));
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

__global__ void swiglu_kernel(float* gate, const float* up, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] += y[i];
}

__global__ void bias_kernel(float* x, const float* b, int64_t n, int64_t dim) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n * dim) x[i] += b[i % dim];
}

__device__ inline float load_half(const uint16_t* p, int64_t i, bool bf16) {
  const uint16_t u = p[i];
  if (bf16) return __uint_as_float(static_cast<uint32_t>(u) << 16);
  return __half2float(__ushort_as_half(u));
}

__device__ inline uint16_t store_half(float v, bool bf16) {
  if (bf16) return __bfloat16_as_ushort(__float2bfloat16_rn(v));
  return __half_as_ushort(__float2half_rn(v));
}

__global__ void to_half_kernel(const float* x, uint16_t* y, int64_t n, bool bf16) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = store_half(x[i], bf16);
}

__global__ void from_half_kernel(const uint16_t* x, float* y, int64_t n, bool bf16) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = load_half(x, i, bf16);
}

__global__ void embed_kernel(const uint16_t* table, int64_t dim, const int32_t* ids, float* out, bool bf16) {
  const int64_t row = ids[blockIdx.y];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
    out[blockIdx.y * dim + i] = load_half(table, row * dim + i, bf16);
}

__device__ inline uint64_t mix64(uint64_t z) {  // splitmix64 finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__device__ inline float uniform_pm1(uint64_t seed, int64_t i) {
  const uint64_t r = mix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i));
  return static_cast<float>(r >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

__global__ void fill_half_kernel(uint16_t* x, int64_t n, uint64_t seed, float scale, bool bf16) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = store_half(scale * uniform_pm1(seed, i), bf16);
}

__global__ void fill_float_kernel(float* x, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = scale * uniform_pm1(seed, i);
}

__global__ void fill_bytes_kernel(uint8_t* x, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = static_cast<uint8_t>(mix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i)) >> 56);
}

__global__ void fill_codes_kernel(uint16_t* x, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = static_cast<uint16_t>(mix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i)) >> 52);
}

int grid_capped(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65536)); }

}  // namespace

void rmsnorm_rows(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* y) {
  if (n <= 0) return;
  rmsnorm_kernel<<<static_cast<unsigned>(n), kThreads>>>(x, weight, dim, eps, y);
  check_launch("rmsnorm_rows");
}

void swiglu_inplace(float* gate, const float* up, int64_t count) {
  if (count <= 0) return;
  swiglu_kernel<<<blocks_for(count, kThreads), kThreads>>>(gate, up, count);
  check_launch("swiglu_inplace");
}

void add_inplace(float* x, const float* y, int64_t count) {
  if (count <= 0) return;
  add_kernel<<<blocks_for(count, kThreads), kThreads>>>(x, y, count);
  check_launch("add_inplace");
}

void add_bias_rows(float* x, const float* bias, int64_t n, int64_t dim) {
  if (n <= 0 || dim <= 0) return;
  bias_kernel<<<blocks_for(n * dim, kThreads), kThreads>>>(x, bias, n, dim);
  check_launch("add_bias_rows");
}

void float_to_half(const float* x, uint16_t* y, int64_t count, bool bf16) {
  if (count <= 0) return;
  to_half_kernel<<<blocks_for(count, kThreads), kThreads>>>(x, y, count, bf16);
  check_launch("float_to_half");
}

void half_to_float(const uint16_t* x, float* y, int64_t count, bool bf16) {
  if (count <= 0) return;
  from_half_kernel<<<blocks_for(count, kThreads), kThreads>>>(x, y, count, bf16);
  check_launch("half_to_float");
}

void embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int n, float* out, bool bf16) {
  if (n <= 0) return;
  const dim3 grid(static_cast<unsigned>(blocks_for(dim, kThreads)), static_cast<unsigned>(n));
  embed_kernel<<<grid, kThreads>>>(table, dim, ids, out, bf16);
  check_launch("embed_rows");
}

void fill_uniform_half(uint16_t* x, int64_t count, uint64_t seed, float scale, bool bf16) {
  if (count <= 0) return;
  fill_half_kernel<<<grid_capped(count), kThreads>>>(x, count, seed, scale, bf16);
  check_launch("fill_uniform_half");
}

void fill_uniform_float(float* x, int64_t count, uint64_t seed, float scale) {
  if (count <= 0) return;
  fill_float_kernel<<<grid_capped(count), kThreads>>>(x, count, seed, scale);
  check_launch("fill_uniform_float");
}

void fill_random_bytes(uint8_t* x, int64_t count, uint64_t seed) {
  if (count <= 0) return;
  fill_bytes_kernel<<<grid_capped(count), kThreads>>>(x, count, seed);
  check_launch("fill_random_bytes");
}

void fill_random_codes12(uint16_t* x, int64_t count, uint64_t seed) {
  if (count <= 0) return;
  fill_codes_kernel<<<grid_capped(count), kThreads>>>(x, count, seed);
  check_launch("fill_random_codes12");
}

}  // namespace cvq::cuda
