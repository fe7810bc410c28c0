#include <cuda_fp16.h>

#include <string>

#include "kernels/cuda/commvq_scores_gpu.h"
#include "kernels/cuda/cuda_check.h"

namespace cvq::cuda {
namespace {

constexpr int kSub = 64;
constexpr int kMaxPerLane = 4;  // h <= 128 (d <= 256)

__device__ inline void cos_sin_at(const CosSinSource& cs, int64_t t, int f, int d, float* c, float* s) {
  const int h = d / 2;
  if (cs.per_token) {
    c[0] = cs.per_token[t * d + f];
    s[0] = cs.per_token[t * d + h + f];
    return;
  }
  const int64_t m = cs.first_position + t;
  const float* hi = cs.coarse + (m / kRopeFineSteps) * d;
  const float* lo = cs.fine + (m % kRopeFineSteps) * d;
  c[0] = hi[f] * lo[f] - hi[h + f] * lo[h + f];
  s[0] = hi[h + f] * lo[f] + hi[f] * lo[h + f];
}

__global__ void table_kernel(const float* xy, int stages, int d, const float* q_pairs, int n_query, float* table) {
  const int h = d / 2;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // ((g·R + j)·64 + s)·h + f
  const int64_t total = static_cast<int64_t>(n_query) * stages * kSub * h;
  if (i >= total) return;
  const int f = static_cast<int>(i % h);
  const int s = static_cast<int>((i / h) % kSub);
  const int j = static_cast<int>((i / (static_cast<int64_t>(h) * kSub)) % stages);
  const int g = static_cast<int>(i / (static_cast<int64_t>(h) * kSub * stages));
  const float scale = rsqrtf(static_cast<float>(d));
  const float a = q_pairs[static_cast<int64_t>(g) * d + f], b = q_pairs[static_cast<int64_t>(g) * d + h + f];
  const float* x = xy + static_cast<int64_t>(j) * 2 * kSub * h;
  const float xs = x[s * h + f], ys = x[kSub * h + s * h + f];
  float* row = table + ((static_cast<int64_t>(g) * stages + j) * kSub + s) * d;
  row[f] = (a * xs + b * ys) * scale;
  row[h + f] = (b * xs - a * ys) * scale;
}

// One warp per token; lanes own pairs f = lane + 32·i.
__global__ void scores_kernel(const float* table, int stages, int d, int n_query, const uint16_t* codes,
                              int64_t code_stride, const uint16_t* norms, CosSinSource cs, int64_t n, float* scores,
                              int64_t score_stride) {
  const int lane = threadIdx.x & 31;
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + (threadIdx.x >> 5);
  if (t >= n) return;
  const int h = d / 2;
  const int per = (h + 31) / 32;
  // Loops run to the constant kMaxPerLane (guarded by `per`) so the arrays stay in registers.
  float cs_c[kMaxPerLane] = {0, 0, 0, 0}, cs_s[kMaxPerLane] = {0, 0, 0, 0};
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int f = lane + 32 * i;
    if (i < per && f < h) cos_sin_at(cs, t, f, d, &cs_c[i], &cs_s[i]);
  }
  const uint16_t* ct = codes + t * code_stride;
  const float norm = __half2float(__ushort_as_half(norms[t]));
  const size_t head_floats = static_cast<size_t>(stages) * kSub * d;
  for (int g = 0; g < n_query; ++g) {
    const float* tg = table + g * head_floats;
    float P[kMaxPerLane] = {0, 0, 0, 0}, Q[kMaxPerLane] = {0, 0, 0, 0};
    for (int j = 0; j < stages; ++j) {
      const int c = ct[j] & 4095;
      const float* ra = tg + (static_cast<size_t>(j) * kSub + (c >> 6)) * d;
      const float* rb = tg + (static_cast<size_t>(j) * kSub + (c & 63)) * d;
#pragma unroll
      for (int i = 0; i < kMaxPerLane; ++i) {
        const int f = lane + 32 * i;
        if (i < per && f < h) {
          P[i] += ra[f] + rb[h + f];
          Q[i] += ra[h + f] - rb[f];
        }
      }
    }
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i)
      if (i < per && lane + 32 * i < h) s += P[i] * cs_c[i] + Q[i] * cs_s[i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) scores[g * score_stride + t] = norm * s;
  }
}

__global__ void decode_keys_kernel(const float* xy, int stages, int d, const uint16_t* codes, int64_t code_stride,
                                   const uint16_t* norms, CosSinSource cs, int64_t n, bool half_split, uint16_t* out,
                                   int64_t out_stride) {
  const int h = d / 2;
  const int64_t t = blockIdx.x;
  const uint16_t* ct = codes + t * code_stride;
  const float norm = __half2float(__ushort_as_half(norms[t]));
  for (int f = threadIdx.x; f < h; f += blockDim.x) {
    float kx = 0.0f, ky = 0.0f;
    for (int j = 0; j < stages; ++j) {
      const int c = ct[j] & 4095;
      const float* x = xy + static_cast<int64_t>(j) * 2 * kSub * h;
      const float* y = x + kSub * h;
      kx += x[(c >> 6) * h + f] - y[(c & 63) * h + f];
      ky += y[(c >> 6) * h + f] + x[(c & 63) * h + f];
    }
    float c, s;
    cos_sin_at(cs, t, f, d, &c, &s);
    const float rx = norm * (kx * c - ky * s), ry = norm * (kx * s + ky * c);
    const int ix = half_split ? f : 2 * f, iy = half_split ? f + h : 2 * f + 1;
    out[t * out_stride + ix] = __half_as_ushort(__float2half_rn(rx));
    out[t * out_stride + iy] = __half_as_ushort(__float2half_rn(ry));
  }
}

void check_shape(const char* what, int stages, int d, int n_query) {
  if (stages <= 0 || d <= 0 || d % 2 != 0 || d > 2 * 32 * kMaxPerLane || n_query <= 0)
    throw Error(std::string(what) + ": bad shape (stages " + std::to_string(stages) + ", head dim " +
                std::to_string(d) + ", query heads " + std::to_string(n_query) + ")");
}

}  // namespace

void commvq_query_table(const float* xy, int stages, int head_dim, const float* q_pairs, int n_query, float* table) {
  check_shape("commvq_query_table (cuda)", stages, head_dim, n_query);
  const int64_t total = static_cast<int64_t>(n_query) * stages * kSub * (head_dim / 2);
  table_kernel<<<blocks_for(total, 256), 256>>>(xy, stages, head_dim, q_pairs, n_query, table);
  check_launch("commvq_query_table");
}

void commvq_scores_codes(const float* table, int stages, int head_dim, int n_query, const uint16_t* codes,
                         int64_t code_stride, const uint16_t* norms_fp16, const CosSinSource& cs, int64_t n_tokens,
                         float* scores, int64_t score_stride) {
  check_shape("commvq_scores_codes (cuda)", stages, head_dim, n_query);
  if (n_tokens <= 0) return;
  constexpr int kWarpsPerBlock = 8;
  scores_kernel<<<blocks_for(n_tokens, kWarpsPerBlock), 32 * kWarpsPerBlock>>>(
      table, stages, head_dim, n_query, codes, code_stride, norms_fp16, cs, n_tokens, scores, score_stride);
  check_launch("commvq_scores_codes");
}

void commvq_decode_keys(const float* xy, int stages, int head_dim, const uint16_t* codes, int64_t code_stride,
                        const uint16_t* norms_fp16, const CosSinSource& cs, int64_t n_tokens, bool half_split,
                        uint16_t* out, int64_t out_stride) {
  check_shape("commvq_decode_keys (cuda)", stages, head_dim, 1);
  if (n_tokens <= 0) return;
  decode_keys_kernel<<<static_cast<unsigned>(n_tokens), 64>>>(xy, stages, head_dim, codes, code_stride, norms_fp16, cs,
                                                              n_tokens, half_split, out, out_stride);
  check_launch("commvq_decode_keys");
}

}  // namespace cvq::cuda
