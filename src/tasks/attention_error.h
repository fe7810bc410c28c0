#pragma once
// Per-layer attention-output error of KV methods against a reference cache, teacher-forced: the text
// runs once through the model with the reference cache, and at every layer each method's cache gets
// the same pre-RoPE keys and values and answers the same queries. So each layer's error is that
// layer's own (no error carried in from the layers below), and arms such as compress=keys, =values
// and both can be compared layer by layer: if the errors of keys and values were independent, both
// together would give about sqrt(e_k² + e_v²).
#include <cstdint>
#include <string>
#include <vector>

namespace cvq {

class LlamaModel;

struct AttentionErrorOptions {
  int chunk = 128;  // tokens per forward call (older tokens are read back from the compressed store)
  int from = 1024;  // errors summed over query positions >= from
  std::string reference = "fp16";
};

struct AttentionError {
  std::string spec;
  std::vector<double> layer_rel;  // per layer: sqrt(Σ‖o − o_ref‖² / Σ‖o_ref‖²) over queries and heads
  double mean_rel = 0.0;          // mean over layers
  // Per layer, how systematic the error is: ‖Σ_i d_i‖² / (n · Σ_i ‖d_i‖²) with d_i = o_i − o_ref,i over
  // the n queries. 1 when every query's error is the same vector (a bias), about 1/n for independent
  // zero-mean errors.
  std::vector<double> layer_bias_share;
  double mean_bias_share = 0.0;
};

std::vector<AttentionError> measure_attention_error(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                                    const std::vector<std::string>& specs,
                                                    const AttentionErrorOptions& o);

}  // namespace cvq
