#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace cvq {
namespace {
bool g_quiet = false;
}

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
  std::fprintf(stderr, "%s%s %lld/%lld %s  %.1f %s/s  ETA %.0fs %s%s", tty ? "\r\x1b[2K" : "", label_.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), unit_.c_str(), rate, unit_.c_str(), eta,
               extra.c_str(), tty ? "" : "\n");
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
