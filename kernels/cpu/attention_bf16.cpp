#include "kernels/cpu/attention_bf16.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cpu/gemm_bf16.h"

namespace cvq {

void PackedKvBf16::pack(const float* k, int64_t k_head_stride, int64_t k_token_stride, int64_t n_keys, const float* v,
                        int64_t v_head_stride, int64_t v_token_stride, int64_t n_values, int n_heads, int d) {
  if (d % 32 != 0) throw Error("bf16 attention: head dim " + std::to_string(d) + " is not a multiple of 32");
  d_ = d;
  n_keys_ = n_keys;
  n_values_ = n_values;
  k_head_elems_ = static_cast<int64_t>(bf16_packed_elements(n_keys, d));
  // Room for a window of round_up(n, 32) tokens starting at any even t0 < n_values.
  v_pad_ = (n_values + 31) / 32 * 32 + 32;
  k_.assign(static_cast<size_t>(k_head_elems_) * n_heads, 0);
  v_.assign(static_cast<size_t>(n_heads) * d * v_pad_, 0);
  std::vector<float> rows(static_cast<size_t>(std::max<int64_t>(n_keys, 1)) * d);
  for (int h = 0; h < n_heads; ++h) {
    for (int64_t t = 0; t < n_keys; ++t)
      std::copy_n(k + h * k_head_stride + t * k_token_stride, d, rows.data() + t * d);
    if (n_keys > 0) pack_bf16_rows(rows.data(), d, n_keys, d, k_.data() + h * k_head_elems_);
    // Values transposed: group g = channels 16g..16g+15, K-pair p = tokens 2p, 2p+1.
    uint16_t* vh = v_.data() + static_cast<int64_t>(h) * d * v_pad_;
    for (int64_t t = 0; t < n_values; ++t) {
      const float* src = v + h * v_head_stride + t * v_token_stride;
      for (int c = 0; c < d; ++c) {
        vh[(c / 16) * 16 * v_pad_ + ((t / 2) * 16 + c % 16) * 2 + (t % 2)] = float_to_bf16(src[c]);
      }
    }
  }
}

void PackedKvBf16::scores(int head, const float* q, int rows, float scale, int64_t t0, int64_t n, float* scores,
                          int64_t ld) const {
  if (!scores_aligned(t0) || t0 + n > n_keys_) throw Error("bf16 attention: key range out of the packed keys");
  thread_local std::vector<float> qs;
  thread_local std::vector<uint16_t> qb;
  qs.resize(static_cast<size_t>(rows) * d_);
  for (int64_t i = 0; i < static_cast<int64_t>(rows) * d_; ++i) qs[i] = q[i] * scale;
  qb.resize(static_cast<size_t>(bf16_padded_tokens(rows)) * d_);
  convert_rows_bf16(qs.data(), d_, rows, d_, 0, rows, qb.data());
  const uint16_t* kh = k_.data() + head * k_head_elems_ + (t0 / 16) * 16 * d_;
  gemm_bf16_strided(active_bf16_kernel(), qb.data(), rows, d_, kh, 16 * static_cast<int64_t>(d_), n, scores, ld);
}

void PackedKvBf16::values(int head, const float* p, int64_t ld, int rows, int64_t t0, int64_t n, float* out) const {
  if (!values_aligned(t0) || t0 + n > n_values_) throw Error("bf16 attention: value range out of the packed values");
  const int64_t kp = (n + 31) / 32 * 32;
  thread_local std::vector<float> pf, y;
  thread_local std::vector<uint16_t> pb;
  pf.assign(static_cast<size_t>(rows) * kp, 0.0f);
  for (int r = 0; r < rows; ++r) std::copy_n(p + r * ld, n, pf.data() + r * kp);
  pb.resize(static_cast<size_t>(bf16_padded_tokens(rows)) * kp);
  convert_rows_bf16(pf.data(), kp, rows, kp, 0, rows, pb.data());
  y.resize(static_cast<size_t>(rows) * d_);
  const uint16_t* vh = v_.data() + static_cast<int64_t>(head) * d_ * v_pad_ + (t0 / 2) * 32;
  gemm_bf16_strided(active_bf16_kernel(), pb.data(), rows, kp, vh, 16 * v_pad_, d_, y.data(), d_);
  for (int64_t i = 0; i < static_cast<int64_t>(rows) * d_; ++i) out[i] += y[i];
}

}  // namespace cvq
