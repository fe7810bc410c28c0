#include "kernels/cpu/commvq_values.h"

#include <cblas.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"

namespace cvq {
namespace {

void check(int code_bits, int rows, int64_t n_tokens) {
  if (code_bits <= 0 || rows < 0 || n_tokens < 0) {
    throw Error("commvq values: bad shape (code bits " + std::to_string(code_bits) + ", rows " + std::to_string(rows) +
                ", tokens " + std::to_string(n_tokens) + ")");
  }
}

void accumulate_scalar(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n, int code_bits,
                       const float* weights, int64_t w_stride, int rows, float* acc) {
  for (int r = 0; r < rows; ++r) {
    float* ar = acc + static_cast<int64_t>(r) * code_bits;
    const float* wr = weights + r * w_stride;
    for (int64_t t = 0; t < n; ++t) {
      const float c = wr[t] * fp16_to_float(p_fp16[t]);
      if (c == 0.0f) continue;
      const uint8_t* ct = codes + t * code_stride;
      for (int j = 0; j < code_bits; ++j)
        if ((ct[j >> 3] >> (j & 7)) & 1) ar[j] += c;
    }
  }
}

}  // namespace

void commvq_values_accumulate_at(SimdLevel level, const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16,
                                 int64_t n_tokens, int code_bits, const float* weights, int64_t w_stride, int rows,
                                 float* acc) {
  check(code_bits, rows, n_tokens);
  if (!cpu_supports(level))
    throw Error(std::string("commvq values: this CPU does not support ") + simd_level_name(level));
  if (level == SimdLevel::Avx512 && detail::commvq_values_avx512_compiled() &&
      detail::commvq_values_accumulate_avx512(codes, code_stride, p_fp16, n_tokens, code_bits, weights, w_stride, rows,
                                              acc)) {
    return;
  }
  accumulate_scalar(codes, code_stride, p_fp16, n_tokens, code_bits, weights, w_stride, rows, acc);
}

void commvq_values_accumulate(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n_tokens,
                              int code_bits, const float* weights, int64_t w_stride, int rows, float* acc) {
  commvq_values_accumulate_at(active_simd_level(), codes, code_stride, p_fp16, n_tokens, code_bits, weights, w_stride,
                              rows, acc);
}

void commvq_values_project(const float* acc, int rows, int code_bits, const float* codebook, const float* scale,
                           int dim, int kv_head, int head_dim, float* out, int64_t out_stride) {
  if (rows <= 0) return;
  if (kv_head < 0 || (kv_head + 1) * head_dim > dim) throw Error("commvq values: KV head outside the value dimension");
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, head_dim, code_bits, 1.0f, acc, code_bits,
              codebook + static_cast<int64_t>(kv_head) * head_dim, dim, 0.0f, out, static_cast<int>(out_stride));
  const float* s = scale + static_cast<int64_t>(kv_head) * head_dim;
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < head_dim; ++i) out[r * out_stride + i] *= s[i];
}

void commvq_values_attend(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n_tokens,
                          int code_bits, const float* weights, int64_t w_stride, int rows, const float* codebook,
                          const float* scale, int dim, int kv_head, int head_dim, float* out, int64_t out_stride) {
  std::vector<float> acc(static_cast<size_t>(rows) * code_bits, 0.0f);
  commvq_values_accumulate(codes, code_stride, p_fp16, n_tokens, code_bits, weights, w_stride, rows, acc.data());
  commvq_values_project(acc.data(), rows, code_bits, codebook, scale, dim, kv_head, head_dim, out, out_stride);
}

void commvq_values_reference(const uint8_t* codes, int64_t code_stride, const uint16_t* p_fp16, int64_t n_tokens,
                             int code_bits, const float* weights, int64_t w_stride, int rows, const float* codebook,
                             const float* scale, int dim, int kv_head, int head_dim, float* out, int64_t out_stride) {
  check(code_bits, rows, n_tokens);
  const int64_t off = static_cast<int64_t>(kv_head) * head_dim;
  std::vector<double> v(static_cast<size_t>(head_dim)), o(static_cast<size_t>(rows) * head_dim, 0.0);
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::fill(v.begin(), v.end(), 0.0);
    const uint8_t* ct = codes + t * code_stride;
    for (int j = 0; j < code_bits; ++j) {
      if (!((ct[j >> 3] >> (j & 7)) & 1)) continue;
      const float* row = codebook + static_cast<int64_t>(j) * dim + off;
      for (int i = 0; i < head_dim; ++i) v[i] += row[i];
    }
    const double p = fp16_to_float(p_fp16[t]);
    for (int i = 0; i < head_dim; ++i) v[i] = scale[off + i] * (v[i] * p);
    for (int r = 0; r < rows; ++r) {
      const double a = weights[r * w_stride + t];
      for (int i = 0; i < head_dim; ++i) o[static_cast<size_t>(r) * head_dim + i] += a * v[i];
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < head_dim; ++i)
      out[r * out_stride + i] = static_cast<float>(o[static_cast<size_t>(r) * head_dim + i]);
}

}  // namespace cvq
