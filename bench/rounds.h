#pragma once
// Interleaved rounds (bench batch, bench decode): the timed steps are split into rounds, every
// configuration takes its turn in each, and the median round is reported, so that noise drifting over
// time (other tenants of the machine) hits every configuration alike.
#include <algorithm>
#include <vector>

namespace cvq {

// Steps of round r when `steps` are split into `rounds` (sizes differ by at most one).
inline int steps_in_round(int steps, int rounds, int r) { return steps * (r + 1) / rounds - steps * r / rounds; }

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

}  // namespace cvq
