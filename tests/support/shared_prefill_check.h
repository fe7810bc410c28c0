#pragma once
// The shared-prefill and batched-decode oracle, for any model: every KV method given one prefill
// (kv/shared_prefill_cache.h) and decoded in one batch (LlamaModel::forward_batch) must give, bit for
// bit, what it gives alone.
#include <string>
#include <vector>

namespace cvq {
class LlamaModel;
namespace test {

// Writes a KVQuant calibration (2/3/4 bits) from the model's own keys and values on `tokens` and a
// random CommVQ codebook pair next to `prefix`; returns the specs of every method in the grid's
// list (fp16, q8_0, q4_0, KIVI-2, KIVI-1, KVQuant-2, CommVQ-2, CommVQ-1), windows shortened to
// `window` tokens so decode crosses compression boundaries.
std::vector<std::string> every_method_spec(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                           const std::string& prefix, int window);

// Checks, for the specs (which may include methods that cannot share: `own` lists them):
//  * the prefill logits through one SharedPrefillCache equal each method's own prefill;
//  * one batched decode step equals each method's own step;
//  * generate_greedy_batch gives each method's tokens, text and KV bytes as generate_greedy_ids.
void expect_shared_equals_separate(const LlamaModel& model, const std::vector<std::string>& specs,
                                   const std::vector<std::string>& own, const std::vector<int32_t>& prompt,
                                   int max_new_tokens);

}  // namespace test
}  // namespace cvq
