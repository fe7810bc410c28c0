#pragma once
// `bench grid`: what one prefill for every method and batched decoding save on a real grid. The same
// config slice runs three times into fresh temporary folders, timed: the first method alone, every
// method with the shared prefill and batched decode (eval's default), and every method on its own
// prefill (eval --own-prefill); the two all-method runs must write the same records. Without
// `with_own` the third run (the slowest) and the record check are skipped.
#include <cstdint>
#include <string>
#include <vector>

namespace cvq {

class LlamaModel;
struct ExperimentConfig;

struct GridSpeedRun {
  std::string name;  // "first method alone", "all, shared prefill", "all, own prefills"
  double seconds = 0.0;
  int failed_or_missing = 0;
};
struct GridSpeed {
  std::vector<GridSpeedRun> runs;      // in the order above; ratios are against runs[0]
  std::vector<std::string> differing;  // method folders whose shared / own records differ
  bool compared = false;               // the own-prefill run ran and records were compared
};
GridSpeed measure_grid_speed(const LlamaModel& model, const std::string& model_path, const ExperimentConfig& cfg,
                             int64_t limit, const std::vector<std::string>& only_tasks, bool with_own = true);

}  // namespace cvq
