#include "tasks/niah.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/text_source.h"
#include "model/llama_model.h"
#include "tasks/data_paths.h"

namespace cvq {

namespace {
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}
}  // namespace

NiahOptions NiahOptions::parse(const TaskOptions& o) {
  o.allow_only({"lengths", "depths", "haystack", "needle", "question", "answer", "template", "system", "answer_prefix",
                "chat", "max_new_tokens", "seed"});
  NiahOptions n;
  n.lengths = o.get_int_list("lengths", n.lengths, 64);
  n.depths = static_cast<int>(o.get_int("depths", n.depths, 1, 1000));
  std::vector<std::string> books;
  for (const char* b : {"emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"})
    books.push_back(data_path(std::string("text/jane_austen/") + b + ".txt"));
  n.haystack = o.get_string_list("haystack", books);
  n.needle = o.get_string("needle", n.needle);
  n.question = o.get_string("question", n.question);
  n.answer = o.get_string("answer", n.answer);
  n.template_text = o.get_string("template", n.template_text);
  if (n.template_text.find("{context}") == std::string::npos) o.fail("template", "must contain {context}");
  n.system = o.get_string("system", n.system);
  n.answer_prefix = o.get_string("answer_prefix", n.answer_prefix);
  n.chat = o.get_bool("chat", n.chat);
  n.max_new_tokens = static_cast<int>(o.get_int("max_new_tokens", n.max_new_tokens, 1, 1 << 16));
  return n;
}

NiahTask::NiahTask(NiahOptions o) : o_(std::move(o)) {
  for (const auto& f : o_.haystack) haystack_ += read_text_file(f) + "\n\n";
}

double NiahTask::depth_of(int64_t i) const {
  const int d = static_cast<int>(i % o_.depths);
  return o_.depths == 1 ? 0.5 : static_cast<double>(d) / (o_.depths - 1);
}

std::string NiahTask::sample_id(int64_t i) const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "len%lld-depth%03d", static_cast<long long>(o_.lengths[i / o_.depths]),
                static_cast<int>(std::lround(100 * depth_of(i))));
  return buf;
}

nlohmann::json NiahTask::identity() const {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : o_.haystack) files.push_back(f.substr(f.find_last_of('/') + 1));
  return {{"task", "niah"},
          {"lengths", o_.lengths},
          {"depths", o_.depths},
          {"haystack", files},
          {"haystack_chars", haystack_.size()},
          {"needle", o_.needle},
          {"question", o_.question},
          {"template", o_.template_text},
          {"system", o_.system},
          {"answer_prefix", o_.answer_prefix},
          {"chat", o_.chat},
          {"max_new_tokens", o_.max_new_tokens}};
}

std::vector<std::string> NiahTask::input_files() const { return o_.haystack; }

std::string insert_at_sentence_boundary(const std::string& context, size_t at, const std::string& needle) {
  if (at >= context.size()) return context + needle;
  size_t p = at;
  while (p > 0) {
    const char c = context[p - 1];
    if ((c == '.' || c == '?' || c == '!') && (p == context.size() || context[p] == ' ' || context[p] == '\n')) break;
    --p;
  }
  return context.substr(0, p) + needle + context.substr(p);
}

TaskPrompt NiahTask::wrap(int64_t i, const std::string& context) const {
  TaskPrompt p;
  p.id = sample_id(i);
  p.text = replace_all(replace_all(o_.template_text, "{question}", o_.question), "{context}", context);
  p.chat = o_.chat;
  p.system = o_.system;
  p.answer_prefix = o_.answer_prefix;
  p.max_new_tokens = o_.max_new_tokens;
  p.stop = {"\n"};
  p.stop_after_content = true;
  p.gold = {{"needle", o_.needle}, {"answer", o_.answer}};
  return p;
}

TaskPrompt NiahTask::prompt(int64_t i, const LlamaModel& model) const {
  if (i < 0 || i >= size()) throw Error("niah: sample index out of range");
  const Tokenizer& tok = model.tokenizer();
  const int64_t length = o_.lengths[i / o_.depths];
  const int limit = static_cast<int>(std::min<int64_t>(length, model.config().n_ctx_train - o_.max_new_tokens));
  const int overhead = count_prompt_tokens(model, wrap(i, o_.needle));
  const int n_ctx_tokens = limit - overhead - 8;  // slack for merges at the seams
  if (n_ctx_tokens < 16) throw Error("niah: length " + std::to_string(length) + " leaves no room for a haystack");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int64_t>(haystack_tokens_.size()) < n_ctx_tokens) {
      const size_t chars = std::min(haystack_.size(), static_cast<size_t>(n_ctx_tokens) * 8 + 4096);
      haystack_tokens_ = tok.encode(std::string_view(haystack_).substr(0, chars), false, false);
      if (static_cast<int64_t>(haystack_tokens_.size()) < n_ctx_tokens)
        throw Error("niah: the haystack files are too short for " + std::to_string(length) + " tokens");
    }
  }
  const std::vector<int32_t> ctx_ids(haystack_tokens_.begin(), haystack_tokens_.begin() + n_ctx_tokens);
  const double depth = depth_of(i);
  const std::string context = tok.decode(ctx_ids);
  size_t at = context.size();
  if (depth < 1.0) {
    const auto upto = static_cast<std::ptrdiff_t>(std::lround(depth * n_ctx_tokens));
    at = tok.decode(std::vector<int32_t>(ctx_ids.begin(), ctx_ids.begin() + upto)).size();
  }
  TaskPrompt p = wrap(i, insert_at_sentence_boundary(context, at, o_.needle));
  p.meta = {{"length", length}, {"depth", depth}};
  char group[64];
  std::snprintf(group, sizeof group, "len=%lld,depth=%.2f", static_cast<long long>(length), depth);
  p.meta["group"] = group;
  return p;
}

}  // namespace cvq
