#pragma once
// Results on disk, one folder per run (task instance × method):
//   <out>/experiment.json                       the config the results were made with
//   <out>/runs/<task>/<method>/run.json          the run's identity (task options, KV spec, model)
//   <out>/runs/<task>/<method>/samples[.shard-i-of-n].jsonl   one record per sample, appended + fsynced
//   <out>/runs/<task>/<method>/summary[.shard-i-of-n].json    aggregate (written atomically)
// A run resumes by skipping the sample ids already in any samples*.jsonl of its folder. A kill can
// only tear the last line of a JSONL file; reading drops such a line (and rewrites the file
// atomically without it when asked to repair). A bad line elsewhere is an error naming the file.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cvq {

std::string run_dir(const std::string& out_dir, const std::string& task, const std::string& method);
std::string shard_suffix(int shard_index, int shard_count);  // "" when unsharded

std::vector<nlohmann::json> read_records_file(const std::string& path, bool repair_torn_tail);
// Every record of a run folder (all shards), deduplicated by id (the later line wins), by "index".
std::vector<nlohmann::json> read_run_records(const std::string& dir, bool repair_torn_tail);
std::vector<std::string> list_files(const std::string& dir, const std::string& prefix, const std::string& suffix);

class RecordWriter {
 public:
  explicit RecordWriter(std::string path);
  ~RecordWriter();
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;
  void append(const nlohmann::json& record);  // one line, flushed and fsynced

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace cvq
