#include "tasks/generation.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "kv/shared_prefill_cache.h"
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
  return generate_greedy_ids(model, cache, tok.encode(prompt, tok.add_bos_default(), true), max_new_tokens, on_piece,
                             stop);
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
  GenerationResult r =
      greedy_decode([&](const int32_t* tokens, const int32_t* positions,
                        int n) { return model.forward(tokens, positions, n, cache, LlamaModel::Logits::Last); },
                    model.tokenizer(), model.config().n_vocab, model.config().n_ctx_train, prompt, max_new_tokens,
                    on_piece, should_stop, rules);
  r.kv_bytes = cache.bytes();
  return r;
}

GreedyStepper::GreedyStepper(const Tokenizer& tok, int n_vocab, int n_ctx, int prompt_tokens, int max_new_tokens,
                             const StopPredicate& should_stop, const EndRules& rules,
                             const std::function<void(const std::string&)>& on_piece)
    : tok_(tok),
      n_vocab_(n_vocab),
      n_ctx_(n_ctx),
      max_new_tokens_(max_new_tokens),
      should_stop_(should_stop),
      rules_(rules),
      on_piece_(on_piece),
      pos_(prompt_tokens) {
  r_.prompt_tokens = prompt_tokens;
}

bool GreedyStepper::step(const float* logits) {
  if (done_) throw Error("generate: a finished sequence was stepped");
  done_ = true;
  if (step_ >= max_new_tokens_ || pos_ >= n_ctx_) return false;
  const bool masked = step_ < rules_.min_new_tokens;
  const int32_t next = masked ? argmax_except(logits, n_vocab_, tok_, rules_.end_ids) : argmax(logits, n_vocab_);
  const bool end_id = std::find(rules_.end_ids.begin(), rules_.end_ids.end(), next) != rules_.end_ids.end();
  if (tok_.is_end_of_generation(next)) {
    r_.hit_eog = true;
    return false;
  }
  r_.tokens.push_back(next);
  ++r_.generated_tokens;
  const std::string piece = tok_.token_to_piece(next);
  r_.text += piece;
  if (on_piece_) on_piece_(piece);
  if (end_id || (should_stop_ && should_stop_(r_.text))) {
    r_.hit_stop = true;
    return false;
  }
  if (step_ + 1 == max_new_tokens_) return false;
  next_ = next;
  ++pos_;
  ++step_;
  done_ = false;
  return true;
}

namespace {
void check_prompt(const std::vector<int32_t>& prompt, int n_ctx) {
  if (prompt.empty()) throw Error("generate: the prompt is empty");
  if (static_cast<int>(prompt.size()) >= n_ctx) {
    throw Error("generate: the prompt has " + std::to_string(prompt.size()) +
                " tokens, at or above the model's context " + std::to_string(n_ctx));
  }
}
}  // namespace

GenerationResult greedy_decode(const ForwardLast& forward, const Tokenizer& tok, int n_vocab, int n_ctx,
                               const std::vector<int32_t>& prompt, int max_new_tokens,
                               const std::function<void(const std::string&)>& on_piece,
                               const StopPredicate& should_stop, const EndRules& rules) {
  using clock = std::chrono::steady_clock;
  check_prompt(prompt, n_ctx);
  const int n = static_cast<int>(prompt.size());
  std::vector<int32_t> positions(prompt.size());
  for (int i = 0; i < n; ++i) positions[i] = i;
  auto t0 = clock::now();
  std::vector<float> logits = forward(prompt.data(), positions.data(), n);
  auto t1 = clock::now();
  GreedyStepper s(tok, n_vocab, n_ctx, n, max_new_tokens, should_stop, rules, on_piece);
  while (s.step(logits.data())) {
    const int32_t next = s.next_token(), pos = s.next_position();
    logits = forward(&next, &pos, 1);
  }
  GenerationResult r = std::move(s.result());
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

BatchGeneration generate_greedy_batch(const LlamaModel& model, const std::vector<KvCache*>& caches,
                                      const std::vector<int32_t>& prompt, int max_new_tokens,
                                      const StopPredicate& should_stop, const EndRules& rules) {
  using clock = std::chrono::steady_clock;
  const LlamaConfig& c = model.config();
  check_prompt(prompt, c.n_ctx_train);
  const int n = static_cast<int>(prompt.size());
  std::vector<int32_t> positions(prompt.size());
  for (int i = 0; i < n; ++i) positions[i] = i;
  std::vector<GreedyStepper> steppers;
  steppers.reserve(caches.size());
  for (size_t i = 0; i < caches.size(); ++i)
    steppers.emplace_back(model.tokenizer(), c.n_vocab, c.n_ctx_train, n, max_new_tokens, should_stop, rules);
  BatchGeneration out;
  out.prefill_group_size.assign(caches.size(), 1);
  std::vector<double> prefill_seconds(caches.size());
  std::vector<size_t> active;
  for (const std::vector<size_t>& group : prefill_groups(caches)) {
    const auto t0 = clock::now();
    std::vector<float> logits;
    if (group.size() == 1) {
      logits = model.forward(prompt.data(), positions.data(), n, *caches[group[0]], LlamaModel::Logits::Last);
    } else {
      std::vector<KvCache*> members;
      for (size_t i : group) members.push_back(caches[i]);
      SharedPrefillCache shared(members);
      logits = model.forward(prompt.data(), positions.data(), n, shared, LlamaModel::Logits::Last);
    }
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    for (size_t i : group) {
      out.prefill_group_size[i] = static_cast<int>(group.size());
      prefill_seconds[i] = secs;
      if (steppers[i].step(logits.data())) active.push_back(i);
    }
  }
  const auto t1 = clock::now();
  std::vector<double> decode_seconds(caches.size(), 0.0);
  auto finish_time = [&] { return std::chrono::duration<double>(clock::now() - t1).count(); };
  while (!active.empty()) {
    std::vector<int32_t> tokens, pos;
    std::vector<KvCache*> batch;
    for (size_t i : active) {
      tokens.push_back(steppers[i].next_token());
      pos.push_back(steppers[i].next_position());
      batch.push_back(caches[i]);
    }
    const std::vector<float> logits = model.forward_batch(tokens.data(), pos.data(), batch);
    std::vector<size_t> still;
    for (size_t b = 0; b < active.size(); ++b) {
      const size_t i = active[b];
      if (steppers[i].step(logits.data() + b * static_cast<size_t>(c.n_vocab))) {
        still.push_back(i);
      } else {
        decode_seconds[i] = finish_time();
      }
    }
    active = std::move(still);
  }
  for (size_t i = 0; i < caches.size(); ++i) {
    GenerationResult r = std::move(steppers[i].result());
    r.prefill_seconds = prefill_seconds[i];
    r.decode_seconds = decode_seconds[i];
    r.kv_bytes = caches[i]->bytes();
    out.results.push_back(std::move(r));
  }
  return out;
}

}  // namespace cvq
