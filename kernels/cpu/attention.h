#pragma once
// Causal grouped-query attention over float keys/values. Queries are batched: query i sees the
// first n_visible[i] cached tokens. Scores and weighted sums go through SGEMM per KV head.
#include <cstdint>

namespace cvq {

struct AttentionArgs {
  const float* q = nullptr;  // [n_q x q_stride], heads contiguous within a query
  int n_q = 0;
  int q_stride = 0;
  int n_head = 0, n_head_kv = 0, head_dim = 0;
  const float* k = nullptr;  // [n_ctx x kv_stride], post-RoPE
  const float* v = nullptr;  // [n_ctx x kv_stride]
  int n_ctx = 0;
  int kv_stride = 0;
  const int32_t* n_visible = nullptr;  // per query, <= n_ctx
  float* out = nullptr;                // [n_q x q_stride]
};

void attention_f32(const AttentionArgs& a);

// In-place softmax of row[0..n) with scores past n_valid masked out (set to 0).
void softmax_masked(float* row, int n, int n_valid);

}  // namespace cvq
