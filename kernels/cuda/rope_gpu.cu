#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/rope_gpu.h"

namespace cvq::cuda {
namespace {

__global__ void rope_kernel(float* heads, int n_heads, int d, const float* cos_sin, bool half_split) {
  const int t = blockIdx.y;
  const int half = d / 2;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;  // (head, pair)
  if (i >= n_heads * half) return;
  const int h = i / half, f = i % half;
  float* v = heads + (static_cast<int64_t>(t) * n_heads + h) * d;
  const int ix = half_split ? f : 2 * f, iy = half_split ? f + half : 2 * f + 1;
  const float c = cos_sin[static_cast<int64_t>(t) * d + f], s = cos_sin[static_cast<int64_t>(t) * d + half + f];
  const float x = v[ix], y = v[iy];
  v[ix] = x * c - y * s;
  v[iy] = x * s + y * c;
}

}  // namespace

void rope_apply(float* heads, int n_tokens, int n_heads, int head_dim, const float* cos_sin, bool half_split) {
  if (n_tokens <= 0 || n_heads <= 0) return;
  const int pairs = n_heads * head_dim / 2;
  const dim3 grid(static_cast<unsigned>(blocks_for(pairs, 128)), static_cast<unsigned>(n_tokens));
  rope_kernel<<<grid, 128>>>(heads, n_heads, head_dim, cos_sin, half_split);
  check_launch("rope_apply");
}

}  // namespace cvq::cuda
