#pragma once
// Greedy decoding: prefill the prompt in one forward call, then one token at a time until an
// end-of-generation token, a stop string, or the token limit.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cvq {

class LlamaModel;
class KvCache;
class Tokenizer;

struct GenerationResult {
  std::string text;
  std::vector<int32_t> tokens;
  int prompt_tokens = 0;
  int generated_tokens = 0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  size_t kv_bytes = 0;
  bool hit_eog = false;   // ended on an end-of-generation token
  bool hit_stop = false;  // ended because the stop predicate fired
  double prefill_tokens_per_s() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0.0; }
  double decode_tokens_per_s() const {
    return decode_seconds > 0 && generated_tokens > 1 ? (generated_tokens - 1) / decode_seconds : 0.0;
  }
};

GenerationResult generate_greedy(const LlamaModel& model, KvCache& cache, const std::string& prompt, int max_new_tokens,
                                 const std::function<void(const std::string&)>& on_piece = {},
                                 const std::vector<std::string>& stop = {});
// Same, from token ids (used by benchmarks that build exact-length prompts); stops when the text
// ends with one of `stop`.
GenerationResult generate_greedy_ids(const LlamaModel& model, KvCache& cache, const std::vector<int32_t>& prompt,
                                     int max_new_tokens, const std::function<void(const std::string&)>& on_piece = {},
                                     const std::vector<std::string>& stop = {});
// Token-id end rules, as Hugging Face generate() takes them (LongBench's samsum: eos_token_id =
// [eos, id of "\n"], min_length = prompt + 1): generation ends when one of end_ids is produced (the token
// is kept in the text, as HF keeps it in the output), and before min_new_tokens tokens exist the
// end-of-generation tokens and end_ids are masked out of the argmax.
struct EndRules {
  std::vector<int32_t> end_ids;
  int min_new_tokens = 0;
};

// The decoding loop itself: stops when should_stop(text so far) is true (checked after each token).
using StopPredicate = std::function<bool(const std::string& text)>;
GenerationResult generate_greedy_ids(const LlamaModel& model, KvCache& cache, const std::vector<int32_t>& prompt,
                                     int max_new_tokens, const std::function<void(const std::string&)>& on_piece,
                                     const StopPredicate& should_stop, const EndRules& rules = {});

// The loop for any engine (CPU or GPU model + its cache): forward(tokens, positions, n) runs the model
// on n tokens and returns the logits of the last one. Stops at the context n_ctx too. kv_bytes is
// left to the caller.
using ForwardLast = std::function<std::vector<float>(const int32_t* tokens, const int32_t* positions, int n)>;
GenerationResult greedy_decode(const ForwardLast& forward, const Tokenizer& tok, int n_vocab, int n_ctx,
                               const std::vector<int32_t>& prompt, int max_new_tokens,
                               const std::function<void(const std::string&)>& on_piece,
                               const StopPredicate& should_stop, const EndRules& rules = {});

// The per-token rules of greedy_decode for one sequence: step() takes the logits of its last token,
// picks the next one and says whether the sequence goes on (then feed next_token() at
// next_position()). Several steppers share one batched forward in generate_greedy_batch.
class GreedyStepper {
 public:
  GreedyStepper(const Tokenizer& tok, int n_vocab, int n_ctx, int prompt_tokens, int max_new_tokens,
                const StopPredicate& should_stop, const EndRules& rules,
                const std::function<void(const std::string&)>& on_piece = {});
  bool step(const float* logits);
  bool done() const { return done_; }
  int32_t next_token() const { return next_; }
  int32_t next_position() const { return pos_ - 1; }
  GenerationResult& result() { return r_; }

 private:
  const Tokenizer& tok_;
  int n_vocab_, n_ctx_, max_new_tokens_;
  StopPredicate should_stop_;
  EndRules rules_;
  std::function<void(const std::string&)> on_piece_;
  GenerationResult r_;
  int step_ = 0;
  int32_t pos_ = 0, next_ = -1;
  bool done_ = false;
};

// One prompt, several KV caches (empty; kv/shared_prefill_cache.h): caches with the same
// prefill_signature() share one prefill, the others prefill alone, and then every sequence decodes
// in one batched forward per step (LlamaModel::forward_batch). Result i is what
// generate_greedy_ids(model, *caches[i], ...) gives, bit for bit; `shared_prefill[i]` says how many
// caches cache i's prefill served (1: its own). Prefill and decode seconds are wall times of the
// shared work; kv_bytes is each cache's.
struct BatchGeneration {
  std::vector<GenerationResult> results;
  std::vector<int> prefill_group_size;
};
BatchGeneration generate_greedy_batch(const LlamaModel& model, const std::vector<KvCache*>& caches,
                                      const std::vector<int32_t>& prompt, int max_new_tokens,
                                      const StopPredicate& should_stop, const EndRules& rules = {});

int32_t argmax(const float* v, int n);

}  // namespace cvq
