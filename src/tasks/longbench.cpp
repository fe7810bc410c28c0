#include "tasks/longbench.h"

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "tasks/data_paths.h"

namespace cvq {

namespace {

nlohmann::json read_config_json(const std::string& path) {
  if (!std::filesystem::exists(path)) fail_file(path, "not found (LongBench config; run scripts/get-data.sh)");
  return read_json_file(path);
}

std::vector<std::string> strings_of(const nlohmann::json& j, const std::string& path, size_t line, const char* field) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (!j.is_array()) fail_file(path, "line " + std::to_string(line) + ": '" + field + "' must be a list");
  for (const auto& x : j) {
    if (!x.is_string()) fail_file(path, "line " + std::to_string(line) + ": '" + field + "' must hold strings");
    out.push_back(x.get<std::string>());
  }
  return out;
}

}  // namespace

std::string render_longbench_template(const std::string& tmpl, const std::string& context, const std::string& input) {
  std::string out;
  for (size_t i = 0; i < tmpl.size();) {
    if (tmpl.compare(i, 9, "{context}") == 0) {
      out += context, i += 9;
    } else if (tmpl.compare(i, 7, "{input}") == 0) {
      out += input, i += 7;
    } else {
      out += tmpl[i++];
    }
  }
  return out;
}

bool parse_longbench_template(const std::string& tmpl, const std::string& prompt, std::string* context,
                              std::string* input) {
  const size_t c = tmpl.find("{context}");
  if (c == std::string::npos || tmpl.find("{context}", c + 1) != std::string::npos) return false;
  const size_t in = tmpl.find("{input}");
  if (in != std::string::npos && (in < c || tmpl.find("{input}", in + 1) != std::string::npos)) return false;
  const std::string head = tmpl.substr(0, c);
  const std::string mid = in == std::string::npos ? "" : tmpl.substr(c + 9, in - c - 9);
  const std::string tail = in == std::string::npos ? tmpl.substr(c + 9) : tmpl.substr(in + 7);
  std::string text = prompt;
  if (!text.empty() && text.back() == '\n' && (tail.empty() || tail.back() != '\n') &&
      (text.size() < tail.size() || text.compare(text.size() - tail.size(), tail.size(), tail) != 0))
    text.pop_back();
  if (text.size() < head.size() + mid.size() + tail.size() || text.compare(0, head.size(), head) != 0 ||
      text.compare(text.size() - tail.size(), tail.size(), tail) != 0)
    return false;
  const std::string body = text.substr(head.size(), text.size() - head.size() - tail.size());
  if (in == std::string::npos) {
    *context = body;
    input->clear();
    return true;
  }
  const size_t m = body.rfind(mid);  // the input is short; the context may hold anything
  if (m == std::string::npos) return false;
  *context = body.substr(0, m);
  *input = body.substr(m + mid.size());
  return true;
}

bool LongBenchTask::uses_chat_template(const std::string& d) {
  return !(d == "trec" || d == "triviaqa" || d == "samsum" || d == "lsht" || d == "lcc" || d == "repobench-p");
}

LongBenchOptions LongBenchOptions::parse(const TaskOptions& o) {
  o.allow_only({"dataset", "source", "path", "config_dir", "chat", "max_prompt_tokens", "max_new_tokens", "seed"});
  LongBenchOptions l;
  l.dataset = o.require_string("dataset");
  l.source = o.get_string("source", l.source);
  if (l.source != "minilongbench" && l.source != "official")
    o.fail("source", "must be \"minilongbench\" or \"official\"");
  l.path = o.get_string("path", l.source == "minilongbench" ? data_path("longbench/minilongbench_en.jsonl")
                                                            : data_path("longbench/data"));
  l.config_dir = o.get_string("config_dir", data_path("longbench/config"));
  if (o.has("chat")) {
    const auto& c = o.json()["chat"];
    if (c.is_boolean()) {
      l.chat = c.get<bool>() ? "true" : "false";
    } else if (c.is_string() && c.get<std::string>() == "auto") {
      l.chat = "auto";
    } else {
      o.fail("chat", "must be true, false or \"auto\"");
    }
  }
  l.max_prompt_tokens = static_cast<int>(o.get_int("max_prompt_tokens", 0, 0, 1 << 24));
  l.max_new_tokens = static_cast<int>(o.get_int("max_new_tokens", 0, 0, 1 << 16));
  return l;
}

LongBenchTask::LongBenchTask(LongBenchOptions o) : o_(std::move(o)) {
  const nlohmann::json maxlen = read_config_json(o_.config_dir + "/dataset2maxlen.json");
  const nlohmann::json prompts = read_config_json(o_.config_dir + "/dataset2prompt.json");
  if (!maxlen.contains(o_.dataset) || !prompts.contains(o_.dataset)) {
    throw Error(o_.config_dir + ": LongBench dataset '" + o_.dataset + "' is not in dataset2maxlen/dataset2prompt");
  }
  max_new_ = o_.max_new_tokens > 0 ? o_.max_new_tokens : maxlen[o_.dataset].get<int>();
  template_ = prompts[o_.dataset].get<std::string>();
  const std::string file = o_.source == "official" ? o_.path + "/" + o_.dataset + ".jsonl" : o_.path;
  if (!std::filesystem::exists(file)) {
    fail_file(file, o_.source == "official"
                        ? "not found (official LongBench rows: unzip the HF data.zip's data/ folder here, or use "
                          "\"source\": \"minilongbench\")"
                        : "not found (run scripts/get-data.sh)");
  }
  std::ifstream in(file);
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail_file(file, "line " + std::to_string(lineno) + ": not valid JSON (" + e.what() + ")");
    }
    LongBenchRow r;
    if (o_.source == "minilongbench") {
      if (!j.contains("task") || !j.contains("prompt") || !j.contains("answers"))
        fail_file(file, "line " + std::to_string(lineno) + ": expected fields task, id, prompt, answers, all_classes");
      if (j["task"].get<std::string>() != o_.dataset) continue;
      r.id = j.value("id", o_.dataset + "-" + std::to_string(rows_.size()));
      r.prompt = j["prompt"].get<std::string>();
      std::string context, input;
      const bool official = parse_longbench_template(template_, r.prompt, &context, &input) &&
                            render_longbench_template(template_, context, input) == r.prompt;
      if (!official) {
        for (const auto& [other, tmpl] : prompts.items()) {
          if (tmpl.is_string() && parse_longbench_template(tmpl.get<std::string>(), r.prompt, &context, &input)) {
            r.prompt = render_longbench_template(template_, context, input);
            ++rerendered_;
            break;
          }
        }
      }
    } else {
      if (!j.contains("context") || !j.contains("input") || !j.contains("answers"))
        fail_file(file,
                  "line " + std::to_string(lineno) + ": expected fields input, context, answers, all_classes, _id");
      r.id = j.value("_id", o_.dataset + "-" + std::to_string(rows_.size()));
      r.prompt = render_longbench_template(template_, j["context"].get<std::string>(), j["input"].get<std::string>());
    }
    r.answers = strings_of(j["answers"], file, lineno, "answers");
    r.all_classes = strings_of(j.value("all_classes", nlohmann::json()), file, lineno, "all_classes");
    rows_.push_back(std::move(r));
  }
  if (rows_.empty()) fail_file(file, "has no rows for LongBench dataset '" + o_.dataset + "'");
}

nlohmann::json LongBenchTask::identity() const {
  nlohmann::json id = {{"task", "longbench"},       {"dataset", o_.dataset},
                       {"source", o_.source},       {"rows", rows_.size()},
                       {"chat", o_.chat},           {"max_prompt_tokens", o_.max_prompt_tokens},
                       {"max_new_tokens", max_new_}};
  if (o_.dataset == "samsum") id["end_rule"] = "newline-token-after-first";
  if (rerendered_ > 0) id["rerendered_official_template"] = rerendered_;  // changed from a "\n" stop string
  return id;
}

std::vector<std::string> LongBenchTask::input_files() const {
  return {o_.source == "official" ? o_.path + "/" + o_.dataset + ".jsonl" : o_.path,
          o_.config_dir + "/dataset2prompt.json", o_.config_dir + "/dataset2maxlen.json"};
}

TaskPrompt LongBenchTask::prompt(int64_t i, const LlamaModel&) const {
  const LongBenchRow& r = rows_.at(static_cast<size_t>(i));
  TaskPrompt p;
  p.id = r.id;
  p.text = r.prompt;
  p.chat = o_.chat == "auto" ? uses_chat_template(o_.dataset) : o_.chat == "true";
  p.max_new_tokens = max_new_;
  p.max_prompt_tokens = o_.max_prompt_tokens;
  if (o_.dataset == "samsum") {
    // pred.py: generate(min_length = prompt + 1, eos_token_id = [eos, tokenizer.encode("\n")[-1]]) — ends on
    // the newline *token* (not on a newline inside another token, e.g. "\n\n"), and never on the first
    // token; the scorer then keeps the first line of pred.lstrip("\n").
    p.end_token_texts = {"\n"};
    p.min_new_tokens = 1;
  }
  p.gold = {{"dataset", o_.dataset}, {"answers", r.answers}, {"all_classes", r.all_classes}};
  p.meta = {{"dataset", o_.dataset}};
  return p;
}

}  // namespace cvq
