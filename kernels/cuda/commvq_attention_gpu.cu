#include <algorithm>
#include <string>

#include <cuda_fp16.h>

#include "kernels/cuda/attention_gpu.h"
#include "kernels/cuda/commvq_attention_gpu.h"
#include "kernels/cuda/commvq_values_gpu.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_memory.h"

namespace cvq::cuda {
namespace {

constexpr int kSub = 64;
constexpr int kThreads = 256;

__global__ void softmax_kernel(float* x, int64_t n, int64_t ld) {
  float* row = x + blockIdx.x * ld;
  __shared__ float red[kThreads / 32];
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, row[i]);
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = m;
  __syncthreads();
  m = red[0];
  for (int w = 1; w < kThreads / 32; ++w) m = fmaxf(m, red[w]);
  __syncthreads();
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float e = expf(row[i] - m);
    row[i] = e;
    s += e;
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
  __syncthreads();
  s = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) s += red[w];
  const float inv = 1.0f / s;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) row[i] *= inv;
}

// Head layout -> pair-split (x_0..x_{h-1}, y_0..y_{h-1}) for every head.
__global__ void to_pairs_kernel(const float* q, int n_head, int d, bool half_split, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int h = d / 2;
  if (i >= n_head * h) return;
  const int head = i / h, f = i % h;
  const float* src = q + static_cast<int64_t>(head) * d;
  out[static_cast<int64_t>(head) * d + f] = src[half_split ? f : 2 * f];
  out[static_cast<int64_t>(head) * d + h + f] = src[half_split ? f + h : 2 * f + 1];
}

__device__ inline float h2f(uint16_t u) { return __half2float(__ushort_as_half(u)); }

// scores[h·ld + t] = q_h · k_t / √d for the window tokens (one warp per (head, token)).
__global__ void window_scores_kernel(const float* q, int n_head, int group, int d, const uint16_t* k, int64_t stride,
                                     int64_t n, float* scores, int64_t ld) {
  const int lane = threadIdx.x & 31;
  const int64_t w = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + (threadIdx.x >> 5);
  if (w >= n * n_head) return;
  const int h = static_cast<int>(w / n);
  const int64_t t = w % n;
  const float* qh = q + static_cast<int64_t>(h) * d;
  const uint16_t* kt = k + t * stride + static_cast<int64_t>(h / group) * d;
  float s = 0.0f;
  for (int c = lane; c < d; c += 32) s += qh[c] * h2f(kt[c]);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) scores[h * ld + t] = s * rsqrtf(static_cast<float>(d));
}

// out[h·d + c] += Σ_t p[h·ld + t] · v_t[c] over the window tokens.
__global__ void window_values_kernel(const float* p, int64_t ld, int n_head, int group, int d, const uint16_t* v,
                                     int64_t stride, int64_t n, float* out) {
  const int h = blockIdx.x;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float o = 0.0f;
    for (int64_t t = 0; t < n; ++t) o += p[h * ld + t] * h2f(v[t * stride + static_cast<int64_t>(h / group) * d + c]);
    out[static_cast<int64_t>(h) * d + c] += o;
  }
}

void check_view(const CommvqLayerView& v) {
  if (v.n_head_kv <= 0 || v.n_head % v.n_head_kv != 0 || v.head_dim <= 0 || v.key_stages <= 0 ||
      v.value_code_bits % 8 != 0 || v.value_code_bits <= 0)
    throw Error("commvq attention (cuda): bad layer shape");
  if (v.n_head / v.n_head_kv > kCommvqMaxValueRows) throw Error("commvq attention (cuda): GQA group too large");
}

}  // namespace

void softmax_rows(float* x, int rows, int64_t n, int64_t ld) {
  if (rows <= 0 || n <= 0) return;
  softmax_kernel<<<static_cast<unsigned>(rows), kThreads>>>(x, n, ld);
  check_launch("softmax_rows");
}

void commvq_attend_codes(const CommvqLayerView& v, const float* q, float* out) {
  check_view(v);
  const int d = v.head_dim, R = v.key_stages, G = v.n_head / v.n_head_kv, D = v.n_head_kv * d;
  const int64_t n = v.n_tokens, nw = v.win_k ? v.n_window : 0, ld = n + nw;
  thread_local DeviceBuffer<float> pairs, table, scores, acc;
  pairs.ensure(static_cast<size_t>(v.n_head) * d);
  table.ensure(static_cast<size_t>(v.n_head) * R * kSub * d);
  scores.ensure(static_cast<size_t>(v.n_head) * ld);
  acc.ensure(static_cast<size_t>(v.n_head) * v.value_code_bits);
  to_pairs_kernel<<<blocks_for(v.n_head * d / 2, 128), 128>>>(q, v.n_head, d, v.half_split, pairs.get());
  check_launch("commvq_attend_codes (pairs)");
  const size_t xy_floats = static_cast<size_t>(R) * 2 * kSub * (d / 2);
  const size_t table_floats = static_cast<size_t>(G) * R * kSub * d;
  for (int g = 0; g < v.n_head_kv; ++g) {
    float* tg = table.get() + g * table_floats;
    commvq_query_table(v.key_xy + g * xy_floats, R, d, pairs.get() + static_cast<size_t>(g) * G * d, G, tg);
    commvq_scores_codes(tg, R, d, G, v.key_codes + static_cast<int64_t>(g) * R, static_cast<int64_t>(v.n_head_kv) * R,
                        v.key_norms, v.angles, n, scores.get() + static_cast<size_t>(g) * G * ld, ld);
  }
  if (nw > 0) {
    window_scores_kernel<<<blocks_for(nw * v.n_head, 8), 256>>>(q, v.n_head, G, d, v.win_k, v.win_stride, nw,
                                                                scores.get() + n, ld);
    check_launch("commvq_attend_codes (window scores)");
  }
  softmax_rows(scores.get(), v.n_head, ld, ld);
  zero_device(acc.get(), static_cast<size_t>(v.n_head) * v.value_code_bits * sizeof(float));
  // Values are one D-long code per token shared by all heads: one pass accumulates every head.
  for (int r0 = 0; r0 < v.n_head; r0 += kCommvqMaxValueRows) {
    const int rows = std::min(kCommvqMaxValueRows, v.n_head - r0);
    commvq_values_accumulate(v.value_codes, v.value_code_bits / 8, v.value_p, n, v.value_code_bits,
                             scores.get() + static_cast<size_t>(r0) * ld, ld, rows,
                             acc.get() + static_cast<size_t>(r0) * v.value_code_bits);
  }
  commvq_values_project(acc.get(), v.n_head, v.value_code_bits, v.value_codebook, v.value_scale, D, 0, G, d, out, d);
  if (nw > 0) {
    window_values_kernel<<<static_cast<unsigned>(v.n_head), 128>>>(scores.get() + n, ld, v.n_head, G, d, v.win_v,
                                                                   v.win_stride, nw, out);
    check_launch("commvq_attend_codes (window values)");
  }
}

void commvq_attend_decoded(const CommvqLayerView& v, const float* q, float* out) {
  check_view(v);
  const int d = v.head_dim, R = v.key_stages, D = v.n_head_kv * d;
  const int64_t n = v.n_tokens;
  thread_local DeviceBuffer<uint16_t> keys, values;
  thread_local DeviceBuffer<int32_t> visible;
  keys.ensure(static_cast<size_t>(n) * D);
  values.ensure(static_cast<size_t>(n) * D);
  visible.ensure(1);
  const size_t xy_floats = static_cast<size_t>(R) * 2 * kSub * (d / 2);
  for (int g = 0; g < v.n_head_kv; ++g)
    commvq_decode_keys(v.key_xy + g * xy_floats, R, d, v.key_codes + static_cast<int64_t>(g) * R,
                       static_cast<int64_t>(v.n_head_kv) * R, v.key_norms, v.angles, n, v.half_split,
                       keys.get() + static_cast<size_t>(g) * d, D);
  commvq_decode_values(v.value_codes, v.value_code_bits / 8, v.value_p, n, v.value_code_bits, v.value_codebook16,
                       v.value_scale, D, values.get(), D);
  const int32_t nv = static_cast<int32_t>(n);
  copy_to_device(visible.get(), &nv, sizeof nv);
  AttentionHalfArgs a;
  a.q = q;
  a.n_q = 1;
  a.q_stride = static_cast<int64_t>(v.n_head) * d;
  a.n_head = v.n_head;
  a.n_head_kv = v.n_head_kv;
  a.head_dim = d;
  a.k = keys.get();
  a.v = values.get();
  a.kv_stride = D;
  a.n_ctx = n;
  a.n_visible = visible.get();
  a.out = out;
  a.out_stride = a.q_stride;
  attention_half(a);
}

}  // namespace cvq::cuda
