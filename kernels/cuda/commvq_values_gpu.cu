#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "kernels/cuda/commvq_values_gpu.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/gemm_gpu.h"

namespace cvq::cuda {
namespace {

constexpr int kWarps = 8;

__device__ inline float h2f(uint16_t u) { return __half2float(__ushort_as_half(u)); }

// Block: 32 code bits (one per lane) × 8 warps over tokens; every lane keeps `rows` sums in
// registers and adds them to acc once at the end.
__global__ void accumulate_kernel(const uint8_t* codes, int64_t code_stride, const uint16_t* p, int64_t n,
                                  int code_bits, const float* w, int64_t w_stride, int rows, float* acc) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int j = blockIdx.x * 32 + lane;
  // Fully unrolled over the maximum row count (guarded by `rows`) so the sums stay in registers.
  float sum[kCommvqMaxValueRows];
#pragma unroll
  for (int r = 0; r < kCommvqMaxValueRows; ++r) sum[r] = 0.0f;
  const int64_t step = static_cast<int64_t>(gridDim.y) * kWarps;
  for (int64_t t = static_cast<int64_t>(blockIdx.y) * kWarps + warp; t < n; t += step) {
    const bool bit = j < code_bits && ((codes[t * code_stride + (j >> 3)] >> (j & 7)) & 1);
    if (!__any_sync(0xffffffffu, bit)) continue;
    const float pt = h2f(p[t]);
    if (bit) {
#pragma unroll
      for (int r = 0; r < kCommvqMaxValueRows; ++r)
        if (r < rows) sum[r] += w[r * w_stride + t] * pt;
    }
  }
  if (j >= code_bits) return;
#pragma unroll
  for (int r = 0; r < kCommvqMaxValueRows; ++r)
    if (r < rows && sum[r] != 0.0f) atomicAdd(acc + static_cast<int64_t>(r) * code_bits + j, sum[r]);
}

__global__ void project_kernel(const float* acc, int rows, int code_bits, const float* C, const float* s, int dim,
                               int first_kv, int per_kv, int d, float* out, int64_t out_stride) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int r = blockIdx.y;
  if (i >= d || r >= rows) return;
  const int col = (first_kv + r / per_kv) * d + i;
  const float* ar = acc + static_cast<int64_t>(r) * code_bits;
  float o = 0.0f;
  for (int j = 0; j < code_bits; ++j) o += ar[j] * C[static_cast<int64_t>(j) * dim + col];
  out[r * out_stride + i] = s[col] * o;
}

__global__ void unpack_kernel(const uint8_t* codes, int64_t code_stride, const uint16_t* p, int64_t n, int code_bits,
                              uint16_t* bits16) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n * code_bits) return;
  const int64_t t = i / code_bits;
  const int j = static_cast<int>(i % code_bits);
  const bool bit = (codes[t * code_stride + (j >> 3)] >> (j & 7)) & 1;
  bits16[i] = bit ? p[t] : static_cast<uint16_t>(0);
}

__global__ void scale_to_half_kernel(const float* y, const float* s, int64_t n, int dim, uint16_t* out,
                                     int64_t out_stride) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n * dim) return;
  const int64_t t = i / dim;
  const int c = static_cast<int>(i % dim);
  out[t * out_stride + c] = __half_as_ushort(__float2half_rn(y[i] * s[c]));
}

}  // namespace

void commvq_values_accumulate(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n_tokens,
                              int code_bits, const float* weights, int64_t w_stride, int rows, float* acc) {
  if (code_bits <= 0 || rows < 0 || rows > kCommvqMaxValueRows || n_tokens < 0)
    throw Error("commvq values (cuda): bad shape (code bits " + std::to_string(code_bits) + ", rows " +
                std::to_string(rows) + ", tokens " + std::to_string(n_tokens) + ")");
  if (n_tokens == 0 || rows == 0) return;
  const int splits = static_cast<int>(std::min<int64_t>(256, (n_tokens + kWarps - 1) / kWarps));
  const dim3 grid(static_cast<unsigned>((code_bits + 31) / 32), static_cast<unsigned>(splits));
  accumulate_kernel<<<grid, 32 * kWarps>>>(codes, code_stride, p_fp16, n_tokens, code_bits, weights, w_stride, rows,
                                           acc);
  check_launch("commvq_values_accumulate");
}

void commvq_values_project(const float* acc, int rows, int code_bits, const float* codebook, const float* scale,
                           int dim, int first_kv_head, int rows_per_kv_head, int head_dim, float* out,
                           int64_t out_stride) {
  if (rows <= 0) return;
  if (rows_per_kv_head <= 0 || first_kv_head < 0 ||
      (first_kv_head + (rows - 1) / rows_per_kv_head + 1) * head_dim > dim)
    throw Error("commvq values (cuda): KV head outside the value dimension");
  const dim3 grid(static_cast<unsigned>(blocks_for(head_dim, 128)), static_cast<unsigned>(rows));
  project_kernel<<<grid, 128>>>(acc, rows, code_bits, codebook, scale, dim, first_kv_head, rows_per_kv_head, head_dim,
                                out, out_stride);
  check_launch("commvq_values_project");
}

void commvq_decode_values(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n_tokens,
                          int code_bits, const uint16_t* codebook16, const float* scale, int dim, uint16_t* out,
                          int64_t out_stride) {
  if (n_tokens <= 0) return;
  thread_local DeviceBuffer<uint16_t> bits16;
  thread_local DeviceBuffer<float> y;
  bits16.ensure(static_cast<size_t>(n_tokens) * code_bits);
  y.ensure(static_cast<size_t>(n_tokens) * dim);
  unpack_kernel<<<blocks_for(n_tokens * code_bits, 256), 256>>>(codes, code_stride, p_fp16, n_tokens, code_bits,
                                                                bits16.get());
  check_launch("commvq_decode_values (unpack)");
  // y[n × D] = bits16[n × code_bits] · C[code_bits × D]
  gemm_half_rows(bits16.get(), n_tokens, code_bits, codebook16, dim, y.get());
  scale_to_half_kernel<<<blocks_for(n_tokens * dim, 256), 256>>>(y.get(), scale, n_tokens, dim, out, out_stride);
  check_launch("commvq_decode_values (scale)");
}

}  // namespace cvq::cuda
