#include "kernels/cpu/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/thread_pool.h"

namespace cvq {
namespace {
constexpr int kQueryChunk = 64;
}

void softmax_masked(float* row, int n, int n_valid) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int j = 0; j < n_valid; ++j) mx = std::max(mx, row[j]);
  double sum = 0.0;
  for (int j = 0; j < n_valid; ++j) {
    row[j] = std::exp(row[j] - mx);
    sum += row[j];
  }
  const float inv = sum > 0 ? static_cast<float>(1.0 / sum) : 0.0f;
  for (int j = 0; j < n_valid; ++j) row[j] *= inv;
  for (int j = n_valid; j < n; ++j) row[j] = 0.0f;
}

void attention_f32(const AttentionArgs& a) {
  const int group = a.n_head / a.n_head_kv;
  const int d = a.head_dim;
  const int n_chunks = (a.n_q + kQueryChunk - 1) / kQueryChunk;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  ThreadPool::global().parallel_for(static_cast<int64_t>(a.n_head_kv) * n_chunks, [&](int64_t begin, int64_t end, int) {
    std::vector<float> qg, scores, og;
    for (int64_t task = begin; task < end; ++task) {
      const int kvh = static_cast<int>(task / n_chunks);
      const int q0 = static_cast<int>(task % n_chunks) * kQueryChunk;
      const int nq = std::min(kQueryChunk, a.n_q - q0);
      int ctx = 0;
      for (int i = 0; i < nq; ++i) ctx = std::max(ctx, a.n_visible[q0 + i]);
      const int rows = nq * group;
      qg.resize(static_cast<size_t>(rows) * d);
      for (int i = 0; i < nq; ++i) {
        const float* src = a.q + static_cast<int64_t>(q0 + i) * a.q_stride + static_cast<int64_t>(kvh) * group * d;
        std::copy(src, src + group * d, qg.data() + static_cast<int64_t>(i) * group * d);
      }
      og.assign(static_cast<size_t>(rows) * d, 0.0f);
      if (ctx > 0) {
        scores.resize(static_cast<size_t>(rows) * ctx);
        const float* kh = a.k + static_cast<int64_t>(kvh) * d;
        const float* vh = a.v + static_cast<int64_t>(kvh) * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ctx, d, scale, qg.data(), d, kh, a.kv_stride, 0.0f,
                    scores.data(), ctx);
        for (int r = 0; r < rows; ++r)
          softmax_masked(scores.data() + static_cast<int64_t>(r) * ctx, ctx, a.n_visible[q0 + r / group]);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, ctx, 1.0f, scores.data(), ctx, vh, a.kv_stride,
                    0.0f, og.data(), d);
      }
      for (int i = 0; i < nq; ++i) {
        float* dst = a.out + static_cast<int64_t>(q0 + i) * a.q_stride + static_cast<int64_t>(kvh) * group * d;
        std::copy(og.data() + static_cast<int64_t>(i) * group * d, og.data() + static_cast<int64_t>(i + 1) * group * d,
                  dst);
      }
    }
  });
}

}  // namespace cvq
