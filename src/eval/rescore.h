#pragma once
// Re-scoring saved predictions (JSONL) without the model: InfiniteBench prediction files
// ({id, prediction, ground_truth}), LongBench pred.py output ({pred, answers, all_classes}), and this
// project's samples*.jsonl records ({prediction, gold}).
#include <nlohmann/json.hpp>
#include <string>

namespace cvq {

struct RescoreResult {
  std::string family, dataset;
  nlohmann::json aggregate;                           // as aggregate_records: score (×100, 2 decimals), n, extra
  nlohmann::json failures = nlohmann::json::array();  // the first few samples scored below 1
};

// task: passkey | number_string | kv_retrieval | gsm8k | niah | longbench:<dataset> | <LongBench
// dataset name> | auto (the family from run.json beside the file, for this project's records).
RescoreResult rescore_file(const std::string& task, const std::string& path, int keep_failures = 5);

}  // namespace cvq
