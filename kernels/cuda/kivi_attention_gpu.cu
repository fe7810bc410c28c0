#include <cuda_fp16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kivi_attention_gpu.h"

namespace cvq::cuda {
namespace {

__device__ inline uint32_t code_at(const uint32_t* words, int j, int bits) {
  const int per = 32 / bits;
  return (words[j / per] >> (bits * (j % per))) & ((1u << bits) - 1u);
}
__device__ inline float h2f(uint16_t u) { return __half2float(__ushort_as_half(u)); }

// One thread per (row, token): Σ_c (q_c s_c) code_c + Σ_c q_c z_c, as the CPU factorization.
__global__ void kivi_scores_kernel(KiviKeyView k, const float* q, int rows, float scale, int64_t t0, int64_t t1,
                                   float* scores, int64_t ld) {
  const int64_t t = t0 + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int r = blockIdx.y;
  if (t >= t1 || r >= rows) return;
  const int64_t g = t / k.group;
  const int j = static_cast<int>(t - g * k.group);
  const uint32_t* cw = k.codes + g * k.chan_stride * k.words;
  const uint16_t* sc = k.scale + g * k.chan_stride;
  const uint16_t* zp = k.zero + g * k.chan_stride;
  const float* qr = q + static_cast<int64_t>(r) * k.d;
  float bias = 0.0f, acc = 0.0f;
  for (int c = 0; c < k.d; ++c) {
    bias += qr[c] * h2f(zp[c]);
    acc += qr[c] * h2f(sc[c]) * static_cast<float>(code_at(cw + static_cast<int64_t>(c) * k.words, j, k.bits));
  }
  scores[r * ld + (t - t0)] = scale * (acc + bias);
}

// One thread per (row, channel), looping over the tokens.
__global__ void kivi_values_kernel(KiviValueView v, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1,
                                   float* out) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int r = blockIdx.y;
  if (c >= v.d || r >= rows) return;
  const int grp = c / v.group, cg = c % v.group;
  float acc = 0.0f;
  for (int64_t t = t0; t < t1; ++t) {
    const float w = p[r * ld + (t - t0)];
    if (w == 0.0f) continue;
    const uint32_t* gw = v.codes + t * v.token_words + static_cast<int64_t>(grp) * v.words;
    const float s = h2f(v.scale[t * v.token_groups + grp]), z = h2f(v.zero[t * v.token_groups + grp]);
    acc += w * s * static_cast<float>(code_at(gw, cg, v.bits)) + w * z;
  }
  out[static_cast<int64_t>(r) * v.d + c] += acc;
}

}  // namespace

void kivi_scores(const KiviKeyView& k, const float* q, int rows, float scale, int64_t t0, int64_t t1, float* scores,
                 int64_t ld) {
  if (t1 <= t0 || rows <= 0) return;
  const dim3 grid(static_cast<unsigned>(blocks_for(t1 - t0, 128)), static_cast<unsigned>(rows));
  kivi_scores_kernel<<<grid, 128>>>(k, q, rows, scale, t0, t1, scores, ld);
  check_launch("kivi_scores");
}

void kivi_values(const KiviValueView& v, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1, float* out) {
  if (t1 <= t0 || rows <= 0) return;
  const dim3 grid(static_cast<unsigned>(blocks_for(v.d, 128)), static_cast<unsigned>(rows));
  kivi_values_kernel<<<grid, 128>>>(v, p, ld, rows, t0, t1, out);
  check_launch("kivi_values");
}

}  // namespace cvq::cuda
