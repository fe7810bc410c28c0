#pragma once
// What the experiment grid runs: an EvalTask is a fixed, ordered list of samples (deterministic from
// its options and seed), each run on a fresh KV cache and turned into one JSON record with a
// "score". GenerationTask is the common shape of the benchmark tasks: build a prompt, apply the
// chat-template and middle-truncation rules, decode greedily with stop strings, score.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cvq {

class LlamaModel;
class KvCache;
class Tokenizer;

class EvalTask {
 public:
  virtual ~EvalTask() = default;
  virtual std::string family() const = 0;  // passkey, longbench, perplexity, ... (selects the aggregation)
  virtual int64_t size() const = 0;        // number of samples
  virtual std::string sample_id(int64_t i) const = 0;
  // Runs sample i; `cache` is empty on entry. The record holds at least "id" and "score".
  virtual nlohmann::json run_sample(int64_t i, const LlamaModel& model, KvCache& cache) = 0;
  // Sample i under several KV methods at once (all caches empty): record j is what run_sample(i,
  // model, *caches[j]) gives, plus "prefill": "own" or "shared" (and "prefill_group", how many of
  // the caches one prefill served). By default one run_sample per cache.
  virtual std::vector<nlohmann::json> run_samples(int64_t i, const LlamaModel& model,
                                                  const std::vector<KvCache*>& caches);
  // Everything that determines the samples (options, data files): results made under another
  // identity are not resumed into.
  virtual nlohmann::json identity() const = 0;
  // The files the samples are made from (data, haystacks, prompt templates): the grid records their
  // SHA-256 in the run's identity (eval/run_identity.h).
  virtual std::vector<std::string> input_files() const { return {}; }
};

struct TaskPrompt {
  std::string id;
  std::string text;           // the prompt; the user turn's content when chat is set
  bool chat = false;          // wrap in the model's chat template (ignored when it has none)
  std::string system;         // optional system turn (chat only)
  std::string answer_prefix;  // appended after the template's assistant opening (or the text)
  int max_new_tokens = 32;
  std::vector<std::string> stop;
  bool stop_after_content = false;  // stop strings count only after the first non-space character
  // Generation also ends on the token id of each of these texts (its last token, as HF's
  // tokenizer.encode(text)[-1]); before min_new_tokens tokens, those ids and end-of-generation are
  // masked (HF's min_length). LongBench's samsum uses both (see tasks/longbench.cpp).
  std::vector<std::string> end_token_texts;
  int min_new_tokens = 0;
  int max_prompt_tokens = 0;                       // 0: the model's context minus max_new_tokens
  nlohmann::json gold;                             // what the scorer needs (kept in the record for re-scoring)
  nlohmann::json meta = nlohmann::json::object();  // e.g. depth, context length; "group" for breakdowns
};

struct PreparedPrompt {
  std::vector<int32_t> ids;
  bool chat = false;  // the chat template was applied
  bool truncated = false;
  int64_t original_tokens = 0;  // the full prompt's tokens before truncation
  std::string hash;             // FNV-1a 64 of the token ids (16 hex digits)
};

// Middle truncation as LongBench does it: tokenize the text; if it exceeds max_tokens, keep the first
// and the last max_tokens/2 tokens, decode both halves to text and join them (the caller
// re-tokenizes). Returns the text unchanged when it fits.
std::string middle_truncate_text(const Tokenizer& tok, const std::string& text, int max_tokens, bool* truncated,
                                 int64_t* original_tokens = nullptr);

// Applies the chat template (if asked and available), the answer prefix and middle truncation so the
// prompt fits max_prompt_tokens (default: model context − max_new_tokens); the text is truncated
// before the template is applied, and if re-tokenization still overshoots, the token list is
// spliced (first half + last half) as a last resort.
PreparedPrompt prepare_prompt(const LlamaModel& model, const TaskPrompt& p);
// Tokens of the whole prompt as prepare_prompt builds it, without any truncation (for sizing).
int count_prompt_tokens(const LlamaModel& model, const TaskPrompt& p);
std::string hash_tokens(const std::vector<int32_t>& ids);

struct TaskGeneration {
  std::string text;  // raw decoded output (before cutting at a stop string)
  std::vector<int32_t> tokens;
  bool hit_stop = false;
  bool hit_eog = false;
  double prefill_seconds = 0.0, decode_seconds = 0.0;
  size_t kv_bytes = 0;         // cache.bytes() at the end
  int64_t context_tokens = 0;  // tokens appended to the cache
};

// Greedy decoding with stop strings that may end inside a token (the whole new text is searched).
// The prompt's end_token_texts and min_new_tokens apply as EndRules (tasks/generation.h).
TaskGeneration generate_for_task(const LlamaModel& model, KvCache& cache, const std::vector<int32_t>& prompt,
                                 const TaskPrompt& p);
// The text before the earliest stop string (after the leading whitespace when stop_after_content).
std::string cut_at_stop(const std::string& text, const std::vector<std::string>& stop, bool stop_after_content);

class GenerationTask : public EvalTask {
 public:
  nlohmann::json run_sample(int64_t i, const LlamaModel& model, KvCache& cache) override;
  // One prompt, one shared prefill per prefill signature, one batched decode (tasks/generation.h).
  std::vector<nlohmann::json> run_samples(int64_t i, const LlamaModel& model,
                                          const std::vector<KvCache*>& caches) override;
  virtual TaskPrompt prompt(int64_t i, const LlamaModel& model) const = 0;
  // The family name given to score_sample (tasks/scoring.h); family() by default.
  virtual std::string scorer() const { return family(); }
};

}  // namespace cvq
