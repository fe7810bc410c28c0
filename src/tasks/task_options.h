#pragma once
// A task's options from an experiment config, with the checks that make a bad config fail with one
// clear message: unknown keys (typos) and wrong types name the config file, the task and the key.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace cvq {

class TaskOptions {
 public:
  // where: how errors name the task, e.g. "experiments/quick.json: task 'passkey-2k'".
  TaskOptions(nlohmann::json options, std::string where);

  void allow_only(const std::set<std::string>& keys) const;
  bool has(const std::string& key) const { return j_.contains(key); }
  int64_t get_int(const std::string& key, int64_t fallback, int64_t min = INT64_MIN, int64_t max = INT64_MAX) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::string require_string(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key, const std::vector<int64_t>& fallback,
                                    int64_t min = 1) const;
  std::vector<std::string> get_string_list(const std::string& key, const std::vector<std::string>& fallback) const;
  const nlohmann::json& json() const { return j_; }
  const std::string& where() const { return where_; }
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const;

 private:
  nlohmann::json j_;
  std::string where_;
};

}  // namespace cvq
