#pragma once
// Wall-clock seconds for progress lines, reports and benchmarks.
#include <chrono>

namespace cvq {

using SteadyClock = std::chrono::steady_clock;

inline double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace cvq
