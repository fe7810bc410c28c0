#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <string>

namespace cvq {
namespace {
bool g_quiet = false;

// "45s", "13m 05s", "2h 04m": readable at any length.
std::string format_eta(double secs) {
  const long long s = static_cast<long long>(secs + 0.5);
  char b[48];
  if (s < 60)
    std::snprintf(b, sizeof b, "%llds", s);
  else if (s < 3600)
    std::snprintf(b, sizeof b, "%lldm %02llds", s / 60, s % 60);
  else
    std::snprintf(b, sizeof b, "%lldh %02lldm", s / 3600, (s % 3600) / 60);
  return b;
}

// Below one unit per second the rate reads as seconds per unit ("38.9 s/layer", not "0.0 layers/s").
std::string format_rate(double rate, const std::string& unit) {
  char b[64];
  if (rate >= 1.0 || rate <= 0.0) {
    std::snprintf(b, sizeof b, "%.1f %s/s", rate, unit.c_str());
  } else {
    const std::string one = unit.size() > 1 && unit.back() == 's' ? unit.substr(0, unit.size() - 1) : unit;
    std::snprintf(b, sizeof b, "%.1f s/%s", 1.0 / rate, one.c_str());
  }
  return b;
}
}  // namespace

void Progress::set_quiet(bool quiet) { g_quiet = quiet; }
bool Progress::quiet() { return g_quiet; }

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), start_(std::chrono::steady_clock::now()) {}

void Progress::update(int64_t done, const std::string& extra) {
  if (g_quiet) return;
  auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_print_ < std::chrono::milliseconds(250)) return;
  last_print_ = now;
  double secs = std::chrono::duration<double>(now - start_).count();
  double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
  double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0.0;
  bool tty = ::isatty(STDERR_FILENO);
  std::fprintf(stderr, "%s%s %lld/%lld %s  %s  ETA %s %s%s", tty ? "\r\x1b[2K" : "", label_.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), unit_.c_str(),
               format_rate(rate, unit_).c_str(), format_eta(eta).c_str(), extra.c_str(), tty ? "" : "\n");
  std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
  if (g_quiet) return;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  bool tty = ::isatty(STDERR_FILENO);
  std::fprintf(stderr, "%s%s done: %lld %s in %.1fs %s\n", tty ? "\r\x1b[2K" : "", label_.c_str(),
               static_cast<long long>(total_), unit_.c_str(), secs, extra.c_str());
}

}  // namespace cvq
