#include "tasks/gsm8k.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/py_random.h"
#include "tasks/data_paths.h"
#include "tasks/metrics.h"

namespace cvq {

std::vector<Gsm8kRow> read_gsm8k(const std::string& path) {
  if (!std::filesystem::exists(path)) fail_file(path, "not found (GSM8K; run scripts/get-data.sh)");
  std::ifstream in(path);
  std::vector<Gsm8kRow> rows;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      rows.push_back({j.at("question").get<std::string>(), j.at("answer").get<std::string>()});
    } catch (const nlohmann::json::exception& e) {
      fail_file(path, "line " + std::to_string(lineno) + ": expected {\"question\", \"answer\"} (" + e.what() + ")");
    }
  }
  if (rows.empty()) fail_file(path, "has no rows");
  return rows;
}

Gsm8kOptions Gsm8kOptions::parse(const TaskOptions& o) {
  o.allow_only({"test", "train", "n_shot", "seed", "chat", "max_new_tokens", "max_prompt_tokens"});
  Gsm8kOptions g;
  g.test_path = o.get_string("test", data_path("gsm8k/test.jsonl"));
  g.train_path = o.get_string("train", data_path("gsm8k/train.jsonl"));
  g.n_shot = static_cast<int>(o.get_int("n_shot", 5, 0, 64));
  g.seed = static_cast<uint64_t>(o.get_int("seed", 1234, 0));
  g.chat = o.get_bool("chat", false);
  g.max_new_tokens = static_cast<int>(o.get_int("max_new_tokens", 256, 1, 1 << 16));
  g.max_prompt_tokens = static_cast<int>(o.get_int("max_prompt_tokens", 0, 0, 1 << 24));
  return g;
}

Gsm8kTask::Gsm8kTask(Gsm8kOptions o)
    : o_(std::move(o)), test_(read_gsm8k(o_.test_path)), train_(read_gsm8k(o_.train_path)) {
  if (o_.n_shot > static_cast<int>(train_.size())) throw Error(o_.train_path + ": fewer rows than n_shot");
}

nlohmann::json Gsm8kTask::identity() const {
  return {{"task", "gsm8k"},
          {"prompt", "lm-eval-gsm8k-v3"},
          {"test_rows", test_.size()},
          {"train_rows", train_.size()},
          {"n_shot", o_.n_shot},
          {"seed", o_.seed},
          {"chat", o_.chat},
          {"max_new_tokens", o_.max_new_tokens},
          {"max_prompt_tokens", o_.max_prompt_tokens}};
}

std::vector<std::string> Gsm8kTask::input_files() const { return {o_.test_path, o_.train_path}; }

std::vector<int64_t> Gsm8kTask::shots_for(int64_t i) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int64_t>(shots_.size()) <= i) {
    // Replay the draws from the start: row i's examples depend on the draws for rows before it.
    PyRandom rng(o_.seed);
    shots_.clear();
    for (int64_t r = 0; r <= i; ++r) shots_.push_back(rng.sample(static_cast<int64_t>(train_.size()), o_.n_shot));
  }
  return shots_[static_cast<size_t>(i)];
}

std::string Gsm8kTask::prompt_text(int64_t i) const {
  std::string text;
  for (int64_t s : shots_for(i)) {
    const Gsm8kRow& ex = train_[static_cast<size_t>(s)];
    text += "Question: " + ex.question + "\nAnswer: " + ex.answer + "\n\n";  // annotations kept (doc_to_target)
  }
  text += "Question: " + test_[static_cast<size_t>(i)].question + "\nAnswer:";
  return text;
}

TaskPrompt Gsm8kTask::prompt(int64_t i, const LlamaModel&) const {
  if (i < 0 || i >= size()) throw Error("gsm8k: sample index out of range");
  TaskPrompt p;
  p.id = sample_id(i);
  p.text = prompt_text(i);
  p.chat = o_.chat;
  p.max_new_tokens = o_.max_new_tokens;
  p.max_prompt_tokens = o_.max_prompt_tokens;
  p.stop = {"Question:", "</s>", "<|im_end|>"};  // v3's `until`
  p.gold = test_[static_cast<size_t>(i)].answer;
  return p;
}

}  // namespace cvq
