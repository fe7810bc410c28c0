#include "commvq/value_data.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"

namespace cvq {

std::vector<int64_t> value_sequence_starts(const ValueLayerData& d) {
  if (d.seq_starts.size() >= 2) return d.seq_starts;
  return {0, d.n_tokens};
}

void value_attention_blocks(const ValueLayerData& d, const Rope& rope, int64_t s0, int64_t s1,
                            const ValueAttentionBlockFn& fn) {
  const int L = static_cast<int>(s1 - s0), H = d.n_head, hd = d.head_dim, D = d.dim(), qd = d.q_dim();
  const int group = d.n_head / d.n_head_kv;
  std::vector<float> kr(d.keys_pre_rope.begin() + s0 * D, d.keys_pre_rope.begin() + s1 * D);
  for (int t = 0; t < L; ++t) rope.apply(kr.data() + static_cast<int64_t>(t) * D, d.n_head_kv, d.positions[s0 + t]);
  constexpr int kQB = 128;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> P(static_cast<size_t>(H) * kQB * L);
  for (int i0 = 0; i0 < L; i0 += kQB) {
    const int qb = std::min(kQB, L - i0), ctx = i0 + qb;
    for (int h = 0; h < H; ++h) {
      float* ph = P.data() + static_cast<int64_t>(h) * qb * ctx;
      const float* q = d.queries.data() + (s0 + i0) * qd + h * hd;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, qb, ctx, hd, scale, q, qd, kr.data() + (h / group) * hd, D,
                  0.0f, ph, ctx);
      for (int r = 0; r < qb; ++r) softmax_masked(ph + static_cast<int64_t>(r) * ctx, ctx, i0 + r + 1);
    }
    fn(i0, qb, ctx, P.data());
  }
}

ValueLayerData load_value_layer_data(const std::string& layer_file, int n_head, int n_head_kv, int head_dim) {
  SafetensorsReader r(layer_file);
  ValueLayerData d;
  d.n_head = n_head;
  d.n_head_kv = n_head_kv;
  d.head_dim = head_dim;
  if (r.metadata().count("layer")) d.layer = std::stoi(r.metadata().at("layer"));
  const auto& tv = r.tensor("values");
  if (tv.shape.size() != 2 || tv.shape[1] != d.dim()) {
    fail_file(layer_file, "tensor 'values' has shape of rank " + std::to_string(tv.shape.size()) +
                              " / width not equal to the model's kv_dim " + std::to_string(d.dim()) +
                              " (activations collected with another model?)");
  }
  const int64_t N = tv.shape[0];
  d.n_tokens = N;
  auto float_tensor = [&](const char* name, int64_t cols) {
    const auto& t = r.tensor(name);
    if (t.shape != std::vector<int64_t>{N, cols}) {
      fail_file(layer_file, std::string("tensor '") + name + "' does not have shape [" + std::to_string(N) + ", " +
                                std::to_string(cols) + "] (activations collected with another model?)");
    }
    return r.floats(name);
  };
  d.values = float_tensor("values", d.dim());
  d.keys_pre_rope = float_tensor("keys", d.dim());
  d.queries = float_tensor("queries", d.q_dim());
  const auto& tp = r.tensor("positions", StDtype::I32, {N});
  d.positions.assign(reinterpret_cast<const int32_t*>(tp.data), reinterpret_cast<const int32_t*>(tp.data) + N);
  if (r.has("seq_starts")) {
    const auto& ts = r.tensor("seq_starts");
    if (ts.dtype != StDtype::I64 || ts.shape.size() != 1 || ts.shape[0] < 1)
      fail_file(layer_file, "tensor 'seq_starts' is not I64 [n_seq + 1]");
    d.seq_starts.resize(static_cast<size_t>(ts.shape[0]));
    std::memcpy(d.seq_starts.data(), ts.data, ts.n_bytes);
  } else {
    const auto& ti = r.tensor("seq_ids", StDtype::I32, {N});
    const auto* ids = reinterpret_cast<const int32_t*>(ti.data);
    d.seq_starts = {0};
    for (int64_t i = 1; i < N; ++i)
      if (ids[i] != ids[i - 1]) d.seq_starts.push_back(i);
    d.seq_starts.push_back(N);
  }
  for (size_t i = 1; i < d.seq_starts.size(); ++i) {
    if (d.seq_starts[i] < d.seq_starts[i - 1] || d.seq_starts[i] > N)
      fail_file(layer_file, "tensor 'seq_starts' is not ascending within [0, N]");
  }
  if (d.seq_starts.front() != 0 || d.seq_starts.back() != N)
    fail_file(layer_file, "tensor 'seq_starts' does not cover [0, N]");
  return d;
}

void value_attention_gram(const ValueLayerData& d, const Rope& rope, const std::vector<int>& sequences, float* gram) {
  const int H = d.n_head;
  const auto starts = value_sequence_starts(d);
  ThreadPool::global().parallel_for(static_cast<int64_t>(sequences.size()), [&](int64_t b, int64_t e, int) {
    for (int64_t si = b; si < e; ++si) {
      const int64_t s0 = starts[sequences[si]], s1 = starts[sequences[si] + 1];
      const int L = static_cast<int>(s1 - s0);
      // acc[pair][t] for the H(H+1)/2 head pairs h <= h2, contiguous in t so the inner loop vectorizes.
      const int n_pairs = H * (H + 1) / 2;
      std::vector<float> acc(static_cast<size_t>(n_pairs) * L, 0.0f);
      value_attention_blocks(d, rope, s0, s1, [&](int i0, int qb, int ctx, const float* P) {
        int pair = 0;
        for (int h = 0; h < H; ++h)
          for (int h2 = h; h2 < H; ++h2, ++pair) {
            float* a = acc.data() + static_cast<int64_t>(pair) * L;
            const float* pa = P + static_cast<int64_t>(h) * qb * ctx;
            const float* pb = P + static_cast<int64_t>(h2) * qb * ctx;
            for (int r = 0; r < qb; ++r) {
              const float* ra = pa + static_cast<int64_t>(r) * ctx;
              const float* rb = pb + static_cast<int64_t>(r) * ctx;
              const int n_vis = i0 + r + 1;
              for (int t = 0; t < n_vis; ++t) a[t] += ra[t] * rb[t];
            }
          }
      });
      int pair = 0;
      for (int h = 0; h < H; ++h)
        for (int h2 = h; h2 < H; ++h2, ++pair)
          for (int t = 0; t < L; ++t) {
            const float v = acc[static_cast<int64_t>(pair) * L + t];
            gram[(s0 + t) * H * H + h * H + h2] = v;
            gram[(s0 + t) * H * H + h2 * H + h] = v;
          }
    }
  });
}

}  // namespace cvq
