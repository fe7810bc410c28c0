#pragma once
// Quality signals that work on a small model, as grid tasks (one sample = one window of the text):
//   perplexity — every token after the first of each `ctx`-token window, fed `chunk` tokens per
//                forward call so that a method with a full-precision window reads its compressed
//                store (same numbers as `eval --task perplexity`);
//   agreement  — teacher-forced top-1 agreement with a reference cache (fp16) and mean
//                KL(reference ‖ method) over the same positions.
#include <mutex>
#include <string>
#include <vector>

#include "tasks/task.h"
#include "tasks/task_options.h"

namespace cvq {

struct WindowOptions {
  std::string data;  // text file (default: WikiText-2 raw test)
  int ctx = 2048;
  int chunk = 512;
  int windows = 4;
  std::string reference = "fp16";  // agreement only
  static WindowOptions parse(const TaskOptions& o, bool agreement);
};

class WindowTask : public EvalTask {
 public:
  WindowTask(WindowOptions o, bool agreement);
  std::string family() const override { return agreement_ ? "agreement" : "perplexity"; }
  int64_t size() const override { return o_.windows; }
  std::string sample_id(int64_t i) const override { return "window-" + std::to_string(i); }
  nlohmann::json identity() const override;
  std::vector<std::string> input_files() const override;
  nlohmann::json run_sample(int64_t i, const LlamaModel& model, KvCache& cache) override;

 private:
  const std::vector<int32_t>& tokens(const LlamaModel& model) const;

  WindowOptions o_;
  bool agreement_;
  std::string text_;
  mutable std::mutex mu_;
  mutable std::vector<int32_t> tokens_;
};

}  // namespace cvq
