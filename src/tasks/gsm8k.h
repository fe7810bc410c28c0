#pragma once
// GSM8K (OpenAI grade-school-math) as lm-eval-harness's `gsm8k` task, version 3: k-shot
// "Question: …\nAnswer: …" pairs from train.jsonl with the answers as written ("<<…>>" calculator
// annotations kept: doc_to_target is the whole answer), drawn per test question with Python's
// random.Random(seed).sample, in test order, as lm-eval's default sampler does; greedy; stop at
// "Question:", "</s>" or "<|im_end|>" (v3's `until`; end-of-generation tokens stop too); strict
// ("#### N") and flexible (last number) extraction.
#include <mutex>
#include <string>
#include <vector>

#include "tasks/task.h"
#include "tasks/task_options.h"

namespace cvq {

struct Gsm8kRow {
  std::string question, answer;
};
std::vector<Gsm8kRow> read_gsm8k(const std::string& path);

struct Gsm8kOptions {
  std::string test_path, train_path;
  int n_shot = 5;
  uint64_t seed = 1234;
  bool chat = false;
  int max_new_tokens = 256;
  int max_prompt_tokens = 0;
  static Gsm8kOptions parse(const TaskOptions& o);
};

class Gsm8kTask : public GenerationTask {
 public:
  explicit Gsm8kTask(Gsm8kOptions o);
  std::string family() const override { return "gsm8k"; }
  int64_t size() const override { return static_cast<int64_t>(test_.size()); }
  std::string sample_id(int64_t i) const override { return "test-" + std::to_string(i); }
  nlohmann::json identity() const override;
  std::vector<std::string> input_files() const override;
  TaskPrompt prompt(int64_t i, const LlamaModel& model) const override;
  std::vector<int64_t> shots_for(int64_t i) const;  // train indices used as examples for test row i
  std::string prompt_text(int64_t i) const;

 private:
  Gsm8kOptions o_;
  std::vector<Gsm8kRow> test_, train_;
  mutable std::mutex mu_;
  mutable std::vector<std::vector<int64_t>> shots_;  // draws for rows 0..n, in order
};

}  // namespace cvq
