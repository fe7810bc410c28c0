#pragma once
// Prefill attention products in bf16 — the engine's matmul=bf16 mode (model/weight_matrix.h) applied
// to attention over full-precision cached tokens: keys, values, queries and probabilities rounded to
// bf16, fp32 sums, through gemm_bf16 (AMX where the CPU has it). The softmax stays in fp32.
//
// A call packs every KV head's keys (as gemm_bf16 weight rows: one row per token, K = head dim) and
// values (transposed: one row per channel, K = tokens, zero-padded) once; then, per block of query
// rows of one KV head:
//   scores[r·ld + j] = scale · q_r·k_{t0+j}           j < n, t0 a multiple of 16
//   out[r·d + c]    += Σ_j p[r·ld + j] · v_{t0+j}[c]   j < n, t0 even
#include <cstdint>
#include <vector>

namespace cvq {

class PackedKvBf16 {
 public:
  // k: head h, token t at k + h·k_head_stride + t·k_token_stride (d floats); likewise v.
  void pack(const float* k, int64_t k_head_stride, int64_t k_token_stride, int64_t n_keys, const float* v,
            int64_t v_head_stride, int64_t v_token_stride, int64_t n_values, int n_heads, int d);
  static bool scores_aligned(int64_t t0) { return t0 % 16 == 0; }
  static bool values_aligned(int64_t t0) { return t0 % 2 == 0; }
  // Thread-safe (const; scratch is per thread).
  void scores(int head, const float* q, int rows, float scale, int64_t t0, int64_t n, float* scores, int64_t ld) const;
  void values(int head, const float* p, int64_t ld, int rows, int64_t t0, int64_t n, float* out) const;

 private:
  int d_ = 0;
  int64_t n_keys_ = 0, n_values_ = 0, k_head_elems_ = 0, v_pad_ = 0;
  std::vector<uint16_t> k_, v_;
};

}  // namespace cvq
