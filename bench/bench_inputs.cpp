#include "bench/bench_inputs.h"

#include "core/error.h"
#include "core/text_source.h"
#include "kv/shared_prefill_cache.h"
#include "model/llama_model.h"
#include "tasks/data_paths.h"
#include "tasks/generation.h"

namespace cvq {

std::string bench_text_path(const std::string& text) {
  return text.empty() ? data_path("text/wikitext-2-raw/wiki.test.raw") : text;
}

std::vector<int32_t> bench_text_tokens(const LlamaModel& model, const std::string& text_path) {
  std::vector<int32_t> ids = model.tokenizer().encode(read_text_file(text_path), false, false);
  if (ids.empty()) throw Error(text_path + ": no tokens");
  return ids;
}

std::vector<int32_t> bench_prompt_tokens(const LlamaModel& model, const std::string& text_path, int n) {
  std::vector<int32_t> tokens = model.tokenizer().encode(read_text_file(text_path), false, false);
  if (static_cast<int>(tokens.size()) < n) throw Error(text_path + ": too short for the prompt");
  tokens.resize(static_cast<size_t>(n));
  return tokens;
}

std::vector<int32_t> repeat_tokens(const std::vector<int32_t>& ids, int n) {
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out[i] = ids[static_cast<size_t>(i) % ids.size()];
  return out;
}

std::vector<int32_t> bench_positions(int n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) p[i] = i;
  return p;
}

std::vector<int32_t> prefill_shared(const LlamaModel& model, const std::vector<int32_t>& prompt,
                                    const std::vector<KvCache*>& caches) {
  const int n = static_cast<int>(prompt.size()), V = model.config().n_vocab;
  const std::vector<int32_t> pos = bench_positions(n);
  std::vector<int32_t> next(caches.size());
  for (const auto& group : prefill_groups(caches)) {
    std::vector<KvCache*> members;
    for (size_t i : group) members.push_back(caches[i]);
    SharedPrefillCache shared(members);
    const std::vector<float> lg = model.forward(prompt.data(), pos.data(), n, shared, LlamaModel::Logits::Last);
    for (size_t i : group) next[i] = argmax(lg.data(), V);
  }
  return next;
}

}  // namespace cvq
