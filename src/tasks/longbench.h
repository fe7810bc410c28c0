#pragma once
// LongBench v1 (THUDM): one dataset per task instance, from either
//   * the official rows (data/<dataset>.jsonl from the HF data.zip: input, context, answers, length,
//     dataset, language, all_classes, _id), rendered with config/dataset2prompt.json; or
//   * the pre-rendered MiniLongBench form (task, id, prompt, answers, all_classes).
// MiniLongBench renders a few datasets with other templates than LongBench's (qasper rows carry
// hotpotqa's prompt, multi_news rows an extra final newline): such rows are parsed back into context
// and input and rendered with the official template (the run identity counts them).
// Max new tokens from config/dataset2maxlen.json. No chat template for trec, triviaqa, samsum, lsht,
// lcc, repobench-p; samsum ends on the newline token, never as the first token (pred.py's min_length and
// eos_token_id; a newline inside another token does not end it). Over-long prompts are truncated in the middle (tokens
// decoded back to text and re-tokenized, as LongBench's pred.py does) to the model's context minus the
// max new tokens, or to max_prompt_tokens when set.
#include <string>
#include <vector>

#include "tasks/task.h"
#include "tasks/task_options.h"

namespace cvq {

struct LongBenchOptions {
  std::string dataset;
  std::string source = "minilongbench";  // or "official"
  std::string path;                      // minilongbench: the jsonl; official: the folder with <dataset>.jsonl
  std::string config_dir;                // dataset2prompt.json and dataset2maxlen.json
  std::string chat = "auto";             // auto (LongBench's rule) | true | false
  int max_prompt_tokens = 0;
  int max_new_tokens = 0;  // 0: dataset2maxlen
  static LongBenchOptions parse(const TaskOptions& o);
};

struct LongBenchRow {
  std::string id, prompt;
  std::vector<std::string> answers, all_classes;
};

class LongBenchTask : public GenerationTask {
 public:
  explicit LongBenchTask(LongBenchOptions o);
  std::string family() const override { return "longbench"; }
  int64_t size() const override { return static_cast<int64_t>(rows_.size()); }
  std::string sample_id(int64_t i) const override { return rows_.at(static_cast<size_t>(i)).id; }
  nlohmann::json identity() const override;
  std::vector<std::string> input_files() const override;
  TaskPrompt prompt(int64_t i, const LlamaModel& model) const override;

  static bool uses_chat_template(const std::string& dataset);  // LongBench's build_chat rule
  const std::vector<LongBenchRow>& rows() const { return rows_; }

 private:
  LongBenchOptions o_;
  std::vector<LongBenchRow> rows_;
  int max_new_ = 0;
  std::string template_;
  int64_t rerendered_ = 0;  // MiniLongBench rows rendered with another template, put back in the official one
};

// str.format-style substitution of {context} and {input} (the only fields LongBench templates use).
std::string render_longbench_template(const std::string& tmpl, const std::string& context, const std::string& input);
// The inverse: if prompt is tmpl rendered with some context and input ({context} before {input}, or
// {context} alone), recover them. A trailing newline the template lacks is tolerated.
bool parse_longbench_template(const std::string& tmpl, const std::string& prompt, std::string* context,
                              std::string* input);

}  // namespace cvq
