#include "tasks/task.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/chat_template.h"
#include "model/llama_model.h"
#include "tasks/generation.h"
#include "tasks/metrics.h"
#include "tasks/scoring.h"

namespace cvq {

std::string middle_truncate_text(const Tokenizer& tok, const std::string& text, int max_tokens, bool* truncated,
                                 int64_t* original_tokens) {
  const std::vector<int32_t> ids = tok.encode(text, false, false);
  if (original_tokens) *original_tokens = static_cast<int64_t>(ids.size());
  if (truncated) *truncated = false;
  if (static_cast<int64_t>(ids.size()) <= max_tokens) return text;
  if (truncated) *truncated = true;
  const size_t half = static_cast<size_t>(max_tokens / 2);
  const std::vector<int32_t> head(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(half));
  const std::vector<int32_t> tail(ids.end() - static_cast<std::ptrdiff_t>(half), ids.end());
  return tok.decode(head) + tok.decode(tail);
}

std::string hash_tokens(const std::vector<int32_t>& ids) {
  // FNV-1a (64-bit) over the ids' little-endian bytes: identifies a prompt across methods and runs.
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t id : ids) {
    for (int b = 0; b < 4; ++b) {
      h ^= static_cast<uint8_t>(static_cast<uint32_t>(id) >> (8 * b));
      h *= 0x100000001b3ull;
    }
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

namespace {

std::string render(const LlamaModel& model, const TaskPrompt& p, const std::string& content, bool* used_chat) {
  *used_chat = false;
  if (p.chat) {
    if (const std::string source = model.chat_template(); !source.empty()) {
      std::vector<ChatMessage> msgs;
      if (!p.system.empty()) msgs.push_back({"system", p.system});
      msgs.push_back({"user", content});
      *used_chat = true;
      return render_chat_from_source(source, msgs, true) + p.answer_prefix;
    }
  }
  return content + p.answer_prefix;
}

}  // namespace

int count_prompt_tokens(const LlamaModel& model, const TaskPrompt& p) {
  bool chat = false;
  const Tokenizer& tok = model.tokenizer();
  return static_cast<int>(tok.encode(render(model, p, p.text, &chat), tok.add_bos_default(), true).size());
}

PreparedPrompt prepare_prompt(const LlamaModel& model, const TaskPrompt& p) {
  const Tokenizer& tok = model.tokenizer();
  const int n_ctx = model.config().n_ctx_train;
  int limit = n_ctx - p.max_new_tokens;
  if (p.max_prompt_tokens > 0) limit = std::min(limit, p.max_prompt_tokens);
  if (limit < 8) {
    throw Error("sample '" + p.id + "': no room for a prompt (context " + std::to_string(n_ctx) + ", " +
                std::to_string(p.max_new_tokens) + " new tokens, prompt limit " + std::to_string(p.max_prompt_tokens) +
                ")");
  }
  PreparedPrompt out;
  bool chat = false;
  const std::string empty = render(model, p, "", &chat);
  const int overhead = static_cast<int>(tok.encode(empty, tok.add_bos_default(), true).size());
  const int budget = limit - overhead;
  if (budget < 4) throw Error("sample '" + p.id + "': the prompt limit leaves no room for the text");
  bool truncated = false;
  int64_t original = 0;
  const std::string content = middle_truncate_text(tok, p.text, budget, &truncated, &original);
  out.ids = tok.encode(render(model, p, content, &chat), tok.add_bos_default(), true);
  out.chat = chat;
  out.original_tokens = original + overhead;
  out.truncated = truncated;
  if (static_cast<int>(out.ids.size()) > limit) {  // re-tokenization merged differently: splice tokens
    const size_t head = static_cast<size_t>(limit / 2), tail = static_cast<size_t>(limit) - head;
    std::vector<int32_t> ids(out.ids.begin(), out.ids.begin() + static_cast<std::ptrdiff_t>(head));
    ids.insert(ids.end(), out.ids.end() - static_cast<std::ptrdiff_t>(tail), out.ids.end());
    out.ids = std::move(ids);
    out.truncated = true;
  }
  out.hash = hash_tokens(out.ids);
  return out;
}

std::string cut_at_stop(const std::string& text, const std::vector<std::string>& stop, bool stop_after_content) {
  size_t from = 0;
  if (stop_after_content) {
    while (from < text.size() && (text[from] == ' ' || text[from] == '\n' || text[from] == '\t' || text[from] == '\r'))
      ++from;
  }
  size_t cut = std::string::npos;
  for (const auto& s : stop) {
    if (s.empty()) continue;
    const size_t p = text.find(s, from);
    if (p != std::string::npos) cut = std::min(cut, p);
  }
  return cut == std::string::npos ? text : text.substr(0, cut);
}

namespace {

EndRules end_rules_for(const LlamaModel& model, const TaskPrompt& p) {
  EndRules rules;
  rules.min_new_tokens = p.min_new_tokens;
  for (const std::string& t : p.end_token_texts) {
    const std::vector<int32_t> ids = model.tokenizer().encode(t, false, false);
    if (ids.empty()) throw Error("task '" + p.id + "': end token text encodes to no token");
    rules.end_ids.push_back(ids.back());
  }
  return rules;
}

StopPredicate stop_predicate_for(const TaskPrompt& p) {
  return [&p](const std::string& text) { return cut_at_stop(text, p.stop, p.stop_after_content).size() < text.size(); };
}

TaskGeneration task_generation(const GenerationResult& g, int64_t context_tokens) {
  TaskGeneration r;
  r.text = g.text;
  r.tokens = g.tokens;
  r.hit_stop = g.hit_stop;
  r.hit_eog = g.hit_eog;
  r.prefill_seconds = g.prefill_seconds;
  r.decode_seconds = g.decode_seconds;
  r.kv_bytes = g.kv_bytes;
  r.context_tokens = context_tokens;
  return r;
}

nlohmann::json generation_record(const GenerationTask& task, const TaskPrompt& p, const PreparedPrompt& pp,
                                 const TaskGeneration& g) {
  const std::string prediction = metrics::sanitize_utf8(cut_at_stop(g.text, p.stop, p.stop_after_content));
  const SampleScore s = score_sample(task.scorer(), prediction, p.gold);
  nlohmann::json rec = {{"id", p.id},
                        {"prediction", prediction},
                        {"score", s.score},
                        {"gold", p.gold},
                        {"prompt_hash", pp.hash},
                        {"prompt_tokens", pp.ids.size()},
                        {"generated_tokens", g.tokens.size()},
                        {"chat", pp.chat},
                        {"truncated", pp.truncated},
                        {"context_tokens", g.context_tokens},
                        {"kv_bytes", g.kv_bytes}};
  if (pp.truncated) rec["original_prompt_tokens"] = pp.original_tokens;
  if (!s.extra.empty()) rec["extra"] = s.extra;
  if (!p.meta.empty()) rec["meta"] = p.meta;
  if (g.text != prediction) rec["raw_output"] = metrics::sanitize_utf8(g.text);
  rec["timing"] = {{"prefill_seconds", g.prefill_seconds}, {"decode_seconds", g.decode_seconds}};
  return rec;
}

}  // namespace

TaskGeneration generate_for_task(const LlamaModel& model, KvCache& cache, const std::vector<int32_t>& prompt,
                                 const TaskPrompt& p) {
  const GenerationResult g =
      generate_greedy_ids(model, cache, prompt, p.max_new_tokens, {}, stop_predicate_for(p), end_rules_for(model, p));
  return task_generation(g, cache.n_tokens(0));
}

std::vector<nlohmann::json> EvalTask::run_samples(int64_t i, const LlamaModel& model,
                                                  const std::vector<KvCache*>& caches) {
  std::vector<nlohmann::json> out;
  for (KvCache* c : caches) {
    out.push_back(run_sample(i, model, *c));
    out.back()["prefill"] = "own";
  }
  return out;
}

nlohmann::json GenerationTask::run_sample(int64_t i, const LlamaModel& model, KvCache& cache) {
  const TaskPrompt p = prompt(i, model);
  const PreparedPrompt pp = prepare_prompt(model, p);
  return generation_record(*this, p, pp, generate_for_task(model, cache, pp.ids, p));
}

std::vector<nlohmann::json> GenerationTask::run_samples(int64_t i, const LlamaModel& model,
                                                        const std::vector<KvCache*>& caches) {
  const TaskPrompt p = prompt(i, model);
  const PreparedPrompt pp = prepare_prompt(model, p);
  const BatchGeneration b =
      generate_greedy_batch(model, caches, pp.ids, p.max_new_tokens, stop_predicate_for(p), end_rules_for(model, p));
  std::vector<nlohmann::json> out;
  for (size_t j = 0; j < caches.size(); ++j) {
    out.push_back(generation_record(*this, p, pp, task_generation(b.results[j], caches[j]->n_tokens(0))));
    const int group = b.prefill_group_size[j];
    out.back()["prefill"] = group > 1 ? "shared" : "own";
    if (group > 1) out.back()["prefill_group"] = group;
  }
  return out;
}

}  // namespace cvq
