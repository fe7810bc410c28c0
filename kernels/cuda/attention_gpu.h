#pragma once
// Causal grouped-query attention over a half-precision (fp16 or bf16) KV store on the device,
// flash-decoding style: the context is cut into splits, each block computes a partial softmax
// (max, sum, weighted values) of one query head over one split, and a second kernel combines the
// splits. Decode (one query, long context) gets many blocks; prefill (many queries) gets few splits.
// Numbers match kernels/cpu/attention.h (attention_f32 on the float values of the same keys) to
// float rounding.
#include <cstdint>

namespace cvq::cuda {

struct AttentionHalfArgs {
  const float* q = nullptr;  // [n_q × q_stride], heads contiguous within a query (post-RoPE)
  int n_q = 0;
  int64_t q_stride = 0;
  int n_head = 0, n_head_kv = 0, head_dim = 0;  // head_dim <= 256
  const uint16_t* k = nullptr;                  // [n_ctx × kv_stride], post-RoPE
  const uint16_t* v = nullptr;                  // [n_ctx × kv_stride]
  int64_t kv_stride = 0;
  int64_t n_ctx = 0;
  const int32_t* n_visible = nullptr;  // device, per query, <= n_ctx
  float* out = nullptr;                // [n_q × out_stride]
  int64_t out_stride = 0;
  bool bf16 = false;
  int split_tokens = 0;  // tokens per split; 0: chosen from the shape
};

void attention_half(const AttentionHalfArgs& a);

}  // namespace cvq::cuda
