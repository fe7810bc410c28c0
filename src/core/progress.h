#pragma once
// Progress line on stderr for long work: "label  done/total  rate/s  ETA". Silent when quiet.
#include <chrono>
#include <cstdint>
#include <string>

namespace cvq {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "items");
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  static void set_quiet(bool quiet);
  static bool quiet();

 private:
  std::string label_, unit_;
  int64_t total_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace cvq
