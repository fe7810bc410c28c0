#pragma once
// Decode-attention latency of one layer, one query token, on the device: fp16 flash-decoding vs
// CommVQ "decode then attend" vs CommVQ on the codes (docs/METHOD.md §9: the paper's latency claim),
// over random KV of the given shapes. Also reports how far the two CommVQ paths' outputs are apart
// (they compute the same function, so this is float/fp16 rounding).
#include <cstdint>
#include <vector>

namespace cvq::gpu {

struct AttentionBenchShape {
  int n_head = 32, n_head_kv = 8, head_dim = 128;  // LLaMA-3.1-8B
  int bits = 2;                                    // CommVQ bits (R = round(bits·d/12), values bits·D)
  double rope_theta = 500000.0;
};

struct AttentionBenchRow {
  int64_t context = 0;
  double fp16_ms = 0.0, decoded_ms = 0.0, codes_ms = 0.0;  // median over reps
  double max_abs_diff_codes_vs_decoded = 0.0;
  double max_abs_output = 0.0;
};

std::vector<AttentionBenchRow> bench_decode_attention(const AttentionBenchShape& shape,
                                                      const std::vector<int64_t>& contexts, int reps, uint64_t seed);

}  // namespace cvq::gpu
