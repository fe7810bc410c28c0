#include "core/resource_paths.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace cvq {
namespace fs = std::filesystem;

std::string share_dir() {
  if (const char* s = std::getenv("COMMVQ_SHARE"); s && *s) return s;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path().parent_path() / "share" / "commvq-bench";
    if (fs::is_directory(installed / "experiments", ec)) return installed.string();
  }
  return COMMVQ_SOURCE_DIR;
}

std::string find_experiment_file(const std::string& arg) {
  std::error_code ec;
  if (arg.empty() || fs::exists(arg, ec) || fs::path(arg).is_absolute()) return arg;
  const fs::path share = share_dir();
  for (const fs::path& p : {share / arg, share / "experiments" / arg, share / "experiments" / (arg + ".json")}) {
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return arg;
}

}  // namespace cvq
