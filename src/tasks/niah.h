#pragma once
// Needle in a haystack: a needle sentence inserted at a sentence boundary of long public-domain
// prose (the Jane Austen novels), at n depths (0..100%, equal steps) × several context lengths.
// Greedy, 40 new tokens, stop at the first newline after the answer starts. Score: ROUGE-1 F between
// the output and the needle; "contains" (the needle's answer phrase appears) is kept beside it.
#include <mutex>
#include <string>
#include <vector>

#include "tasks/task.h"
#include "tasks/task_options.h"

namespace cvq {

struct NiahOptions {
  std::vector<int64_t> lengths{1024, 2048};  // whole prompt tokens, at most
  int depths = 10;
  std::vector<std::string> haystack;  // text files, concatenated in this order
  std::string needle =
      " The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.";
  std::string question = "What is the best thing to do in San Francisco?";
  std::string answer = "eat a sandwich and sit in Dolores Park on a sunny day";
  std::string template_text =
      "<document>\n{context}\n</document>\n\n{question} Answer with one sentence from the document.";
  std::string system;
  std::string answer_prefix;
  bool chat = true;
  int max_new_tokens = 40;
  static NiahOptions parse(const TaskOptions& o);  // haystack defaults to the data folder's novels
};

class NiahTask : public GenerationTask {
 public:
  explicit NiahTask(NiahOptions o);
  std::string family() const override { return "niah"; }
  int64_t size() const override { return static_cast<int64_t>(o_.lengths.size()) * o_.depths; }
  std::string sample_id(int64_t i) const override;
  nlohmann::json identity() const override;
  std::vector<std::string> input_files() const override;
  TaskPrompt prompt(int64_t i, const LlamaModel& model) const override;
  double depth_of(int64_t i) const;

 private:
  TaskPrompt wrap(int64_t i, const std::string& context) const;

  NiahOptions o_;
  std::string haystack_;
  mutable std::mutex mu_;
  mutable std::vector<int32_t> haystack_tokens_;  // first tokens of the haystack (enough for the longest length)
};

// Inserts `needle` into `context` at the sentence boundary at or before char offset `at`
// (after the last ". ", ".\n", "? ", "! " ... before it; at the start when there is none).
std::string insert_at_sentence_boundary(const std::string& context, size_t at, const std::string& needle);

}  // namespace cvq
