#include "eval/results_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"

namespace cvq {

namespace fs = std::filesystem;

std::string run_dir(const std::string& out_dir, const std::string& task, const std::string& method) {
  return out_dir + "/runs/" + task + "/" + method;
}

std::string shard_suffix(int shard_index, int shard_count) {
  if (shard_count <= 1) return "";
  return ".shard-" + std::to_string(shard_index) + "-of-" + std::to_string(shard_count);
}

std::vector<nlohmann::json> read_records_file(const std::string& path, bool repair_torn_tail) {
  std::vector<nlohmann::json> out;
  if (!fs::exists(path)) return out;
  const std::string text = read_file(path);
  size_t start = 0, lineno = 0, good_end = 0;
  bool torn = false;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    const bool last = end == std::string::npos;
    if (last) end = text.size();
    ++lineno;
    const std::string_view line(text.data() + start, end - start);
    if (!line.empty()) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      const bool ok = !j.is_discarded() && j.is_object() && j.contains("id");
      if (!ok) {
        // Only the final line can be torn by a kill (lines are written whole, then fsynced).
        const bool is_tail = last || text.find_first_not_of('\n', end) == std::string::npos;
        if (!is_tail) fail_file(path, "line " + std::to_string(lineno) + " is not a result record (corrupt file?)");
        torn = true;
        break;
      }
      out.push_back(std::move(j));
    }
    if (last) break;
    start = end + 1;
    good_end = start;
  }
  if (torn && repair_torn_tail) write_file_atomic(path, std::string_view(text).substr(0, good_end));
  return out;
}

std::vector<std::string> list_files(const std::string& dir, const std::string& prefix, const std::string& suffix) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (e.is_regular_file() && n.size() >= prefix.size() + suffix.size() && n.rfind(prefix, 0) == 0 &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0 && n.find(".tmp.") == std::string::npos)
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<nlohmann::json> read_run_records(const std::string& dir, bool repair_torn_tail) {
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& f : list_files(dir, "samples", ".jsonl"))
    for (auto& r : read_records_file(f, repair_torn_tail)) {
      const std::string id = r["id"].is_string() ? r["id"].get<std::string>() : r["id"].dump();
      by_id[id] = std::move(r);
    }
  std::vector<nlohmann::json> out;
  for (auto& [id, r] : by_id) out.push_back(std::move(r));
  std::stable_sort(out.begin(), out.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a.value("index", int64_t{0}) < b.value("index", int64_t{0});
  });
  return out;
}

RecordWriter::RecordWriter(std::string path) : path_(std::move(path)) {
  fs::create_directories(fs::path(path_).parent_path());
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_file(path_, std::string("cannot open for appending: ") + std::strerror(errno));
}

RecordWriter::~RecordWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void RecordWriter::append(const nlohmann::json& record) {
  const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_file(path_, std::string("write failed: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd_) != 0) fail_file(path_, "cannot flush to disk");
}

}  // namespace cvq
