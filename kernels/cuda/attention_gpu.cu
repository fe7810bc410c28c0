#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/cuda/attention_gpu.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_memory.h"

namespace cvq::cuda {
namespace {

constexpr int kThreads = 128;  // 4 warps
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 128;  // tokens scored per pass
constexpr int kMaxDim = 256;

__device__ inline float ld_half(const uint16_t* p, bool bf16) {
  return bf16 ? __uint_as_float(static_cast<uint32_t>(*p) << 16) : __half2float(__ushort_as_half(*p));
}

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// partial[(qi·n_head + h)·n_splits + s] = (m, l, acc[d]).
__global__ void split_kernel(AttentionHalfArgs a, int split_len, int n_splits, float* partial) {
  const int split = blockIdx.x, h = blockIdx.y, qi = blockIdx.z;
  const int d = a.head_dim;
  const int kvh = h / (a.n_head / a.n_head_kv);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  __shared__ float qs[kMaxDim];
  __shared__ float sc[kChunk];
  __shared__ float red[kWarps];
  const float scale = rsqrtf(static_cast<float>(d));
  for (int c = tid; c < d; c += kThreads) qs[c] = a.q[qi * a.q_stride + static_cast<int64_t>(h) * d + c] * scale;
  __syncthreads();

  const int64_t nvis = a.n_visible[qi];
  const int64_t s0 = static_cast<int64_t>(split) * split_len;
  const int64_t s1 = min(s0 + split_len, nvis);
  float m = -INFINITY, l = 0.0f;
  float acc0 = 0.0f, acc1 = 0.0f;  // channels tid and tid + 128
  const uint16_t* kb = a.k + static_cast<int64_t>(kvh) * d;
  const uint16_t* vb = a.v + static_cast<int64_t>(kvh) * d;
  for (int64_t c0 = s0; c0 < s1; c0 += kChunk) {
    const int cnt = static_cast<int>(s1 - c0 < kChunk ? s1 - c0 : kChunk);
    for (int t = warp; t < cnt; t += kWarps) {
      const uint16_t* kt = kb + (c0 + t) * a.kv_stride;
      float dot = 0.0f;
      for (int c = lane; c < d; c += 32) dot += qs[c] * ld_half(kt + c, a.bf16);
      dot = warp_sum(dot);
      if (lane == 0) sc[t] = dot;
    }
    __syncthreads();
    float cm = -INFINITY;
    for (int t = tid; t < cnt; t += kThreads) cm = fmaxf(cm, sc[t]);
    cm = warp_max(cm);
    if (lane == 0) red[warp] = cm;
    __syncthreads();
    cm = red[0];
    for (int w = 1; w < kWarps; ++w) cm = fmaxf(cm, red[w]);
    const float nm = fmaxf(m, cm);
    const float corr = expf(m - nm);  // m = -inf at first: corr = 0
    __syncthreads();                  // everyone has read red
    float ps = 0.0f;
    for (int t = tid; t < cnt; t += kThreads) {
      const float p = expf(sc[t] - nm);
      sc[t] = p;
      ps += p;
    }
    ps = warp_sum(ps);
    if (lane == 0) red[warp] = ps;
    __syncthreads();
    float csum = 0.0f;
    for (int w = 0; w < kWarps; ++w) csum += red[w];
    l = l * corr + csum;
    acc0 *= corr;
    acc1 *= corr;
    for (int t = 0; t < cnt; ++t) {
      const uint16_t* vt = vb + (c0 + t) * a.kv_stride;
      const float p = sc[t];
      if (tid < d) acc0 += p * ld_half(vt + tid, a.bf16);
      if (tid + kThreads < d) acc1 += p * ld_half(vt + tid + kThreads, a.bf16);
    }
    m = nm;
    __syncthreads();  // sc and red are reused by the next chunk
  }
  float* pr = partial + ((static_cast<int64_t>(qi) * a.n_head + h) * n_splits + split) * (d + 2);
  if (tid == 0) {
    pr[0] = m;
    pr[1] = l;
  }
  if (tid < d) pr[2 + tid] = acc0;
  if (tid + kThreads < d) pr[2 + tid + kThreads] = acc1;
}

__global__ void combine_kernel(AttentionHalfArgs a, int n_splits, const float* partial) {
  const int h = blockIdx.x, qi = blockIdx.y, d = a.head_dim;
  const float* base = partial + (static_cast<int64_t>(qi) * a.n_head + h) * n_splits * (d + 2);
  float M = -INFINITY;
  for (int s = 0; s < n_splits; ++s) M = fmaxf(M, base[s * (d + 2)]);
  float L = 0.0f;
  for (int s = 0; s < n_splits; ++s) {
    const float ms = base[s * (d + 2)];
    if (ms > -INFINITY) L += base[s * (d + 2) + 1] * expf(ms - M);
  }
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float o = 0.0f;
    for (int s = 0; s < n_splits; ++s) {
      const float ms = base[s * (d + 2)];
      if (ms > -INFINITY) o += base[s * (d + 2) + 2 + c] * expf(ms - M);
    }
    a.out[qi * a.out_stride + static_cast<int64_t>(h) * d + c] = L > 0.0f ? o / L : 0.0f;
  }
}

}  // namespace

void attention_half(const AttentionHalfArgs& a) {
  if (a.n_q <= 0) return;
  if (a.head_dim <= 0 || a.head_dim > kMaxDim || a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0)
    throw Error("attention_half: bad shape (head dim " + std::to_string(a.head_dim) + ", heads " +
                std::to_string(a.n_head) + "/" + std::to_string(a.n_head_kv) + ")");
  const int64_t n_ctx = std::max<int64_t>(a.n_ctx, 1);
  int split_len = a.split_tokens;
  if (split_len <= 0) {
    // Aim for ~2048 blocks in all; splits no shorter than 256 tokens.
    const int64_t rows = static_cast<int64_t>(a.n_q) * a.n_head;
    const int64_t want_splits = std::max<int64_t>(1, 2048 / rows);
    split_len = static_cast<int>(std::max<int64_t>(256, (n_ctx + want_splits - 1) / want_splits));
  }
  const int n_splits = static_cast<int>((n_ctx + split_len - 1) / split_len);
  thread_local DeviceBuffer<float> partial;
  partial.ensure(static_cast<size_t>(a.n_q) * a.n_head * n_splits * (a.head_dim + 2));
  const dim3 grid(static_cast<unsigned>(n_splits), static_cast<unsigned>(a.n_head), static_cast<unsigned>(a.n_q));
  split_kernel<<<grid, kThreads>>>(a, split_len, n_splits, partial.get());
  check_launch("attention_half (splits)");
  const dim3 grid2(static_cast<unsigned>(a.n_head), static_cast<unsigned>(a.n_q));
  combine_kernel<<<grid2, 128>>>(a, n_splits, partial.get());
  check_launch("attention_half (combine)");
}

}  // namespace cvq::cuda
