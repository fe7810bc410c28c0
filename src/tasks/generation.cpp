#include "tasks/generation.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"

namespace cvq {

int32_t argmax(const float* v, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

namespace {
// The argmax over the tokens that may end generation neither as end-of-generation nor as end_ids.
int32_t argmax_except(const float* v, int n, const Tokenizer& tok, const std::vector<int32_t>& end_ids) {
  int32_t best = -1;
  for (int i = 0; i < n; ++i) {
    if (tok.is_end_of_generation(i) || std::find(end_ids.begin(), end_ids.end(), i) != end_ids.end()) continue;
    if (best < 0 || v[i] > v[best]) best = i;
  }
  if (best < 0) throw Error("generate: every token is masked at the first step");
  return best;
}
}  // namespace

GenerationResult generate_greedy(const LlamaModel& model, KvCache& cache, const std::string& prompt, int max_new_tokens,
                                 const std::function<void(const std::string&)>& on_piece,
                                 const std::vector<std::string>& stop) {
  const Tokenizer& tok = model.tokenizer();
  return generate_greedy_ids(model, cache, tok.encode(prompt, tok.add_bos_default(), true), max_new_tokens, on_piece, stop);
}

GenerationResult generate_greedy_ids(const LlamaModel& model, KvCache& cache, const std::vector<int32_t>& prompt,
                                     int max_new_tokens, const std::function<void(const std::string&)>& on_piece,
                                     const std::vector<std::string>& stop) {
  return generate_greedy_ids(model, cache, prompt, max_new_tokens, on_piece, [&stop](const std::string& text) {
    for (const auto& s : stop)
      if (!s.empty() && text.size() >= s.size() && text.compare(text.size() - s.size(), s.size(), s) == 0) return true;
    return false;
  });
}

GenerationResult generate_greedy_ids(const LlamaModel& model, KvCache& cache, const std::vector<int32_t>& prompt,
                                     int max_new_tokens, const std::function<void(const std::string&)>& on_piece,
                                     const StopPredicate& should_stop, const EndRules& rules) {
  GenerationResult r = greedy_decode(
      [&](const int32_t* tokens, const int32_t* positions, int n) {
        return model.forward(tokens, positions, n, cache, LlamaModel::Logits::Last);
      },
      model.tokenizer(), model.config().n_vocab, model.config().n_ctx_train, prompt, max_new_tokens, on_piece,
      should_stop, rules);
  r.kv_bytes = cache.bytes();
  return r;
}

GenerationResult greedy_decode(const ForwardLast& forward, const Tokenizer& tok, int n_vocab, int n_ctx,
                               const std::vector<int32_t>& prompt, int max_new_tokens,
                               const std::function<void(const std::string&)>& on_piece, const StopPredicate& should_stop,
                               const EndRules& rules) {
  using clock = std::chrono::steady_clock;
  if (prompt.empty()) throw Error("generate: the prompt is empty");
  if (static_cast<int>(prompt.size()) >= n_ctx) {
    throw Error("generate: the prompt has " + std::to_string(prompt.size()) + " tokens, at or above the model's context " +
                std::to_string(n_ctx));
  }
  GenerationResult r;
  r.prompt_tokens = static_cast<int>(prompt.size());
  std::vector<int32_t> positions(prompt.size());
  for (size_t i = 0; i < prompt.size(); ++i) positions[i] = static_cast<int32_t>(i);
  auto t0 = clock::now();
  std::vector<float> logits = forward(prompt.data(), positions.data(), r.prompt_tokens);
  auto t1 = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  int32_t pos = r.prompt_tokens;
  for (int step = 0; step < max_new_tokens && pos < n_ctx; ++step) {
    const bool masked = step < rules.min_new_tokens;
    const int32_t next = masked ? argmax_except(logits.data(), n_vocab, tok, rules.end_ids) : argmax(logits.data(), n_vocab);
    const bool end_id = std::find(rules.end_ids.begin(), rules.end_ids.end(), next) != rules.end_ids.end();
    if (tok.is_end_of_generation(next)) {
      r.hit_eog = true;
      break;
    }
    r.tokens.push_back(next);
    ++r.generated_tokens;
    const std::string piece = tok.token_to_piece(next);
    r.text += piece;
    if (on_piece) on_piece(piece);
    if (end_id || (should_stop && should_stop(r.text))) {
      r.hit_stop = true;
      break;
    }
    if (step + 1 == max_new_tokens) break;
    logits = forward(&next, &pos, 1);
    ++pos;
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace cvq
