#include "tasks/task_options.h"

#include "core/error.h"

namespace cvq {

TaskOptions::TaskOptions(nlohmann::json options, std::string where) : j_(std::move(options)), where_(std::move(where)) {
  if (!j_.is_object()) throw Error(where_ + ": the task must be a JSON object");
}

void TaskOptions::fail(const std::string& key, const std::string& problem) const {
  throw Error(where_ + ": option '" + key + "' " + problem);
}

void TaskOptions::allow_only(const std::set<std::string>& keys) const {
  for (const auto& [k, v] : j_.items()) {
    if (keys.count(k)) continue;
    std::string known;
    for (const auto& x : keys) known += (known.empty() ? "" : ", ") + x;
    throw Error(where_ + ": unknown option '" + k + "' (this task knows: " + known + ")");
  }
}

int64_t TaskOptions::get_int(const std::string& key, int64_t fallback, int64_t min, int64_t max) const {
  if (!j_.contains(key)) return fallback;
  const auto& v = j_[key];
  if (!v.is_number_integer()) fail(key, "must be an integer (got " + v.dump() + ")");
  const int64_t x = v.get<int64_t>();
  if (x < min || x > max) {
    fail(key, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "] (got " + std::to_string(x) + ")");
  }
  return x;
}

double TaskOptions::get_double(const std::string& key, double fallback) const {
  if (!j_.contains(key)) return fallback;
  const auto& v = j_[key];
  if (!v.is_number()) fail(key, "must be a number (got " + v.dump() + ")");
  return v.get<double>();
}

bool TaskOptions::get_bool(const std::string& key, bool fallback) const {
  if (!j_.contains(key)) return fallback;
  const auto& v = j_[key];
  if (!v.is_boolean()) fail(key, "must be true or false (got " + v.dump() + ")");
  return v.get<bool>();
}

std::string TaskOptions::get_string(const std::string& key, const std::string& fallback) const {
  if (!j_.contains(key)) return fallback;
  const auto& v = j_[key];
  if (!v.is_string()) fail(key, "must be a string (got " + v.dump() + ")");
  return v.get<std::string>();
}

std::string TaskOptions::require_string(const std::string& key) const {
  if (!j_.contains(key)) throw Error(where_ + ": option '" + key + "' is required");
  return get_string(key, "");
}

std::vector<int64_t> TaskOptions::get_int_list(const std::string& key, const std::vector<int64_t>& fallback,
                                               int64_t min) const {
  if (!j_.contains(key)) return fallback;
  const auto& v = j_[key];
  if (!v.is_array() || v.empty()) fail(key, "must be a non-empty list of integers (got " + v.dump() + ")");
  std::vector<int64_t> out;
  for (const auto& x : v) {
    if (!x.is_number_integer() || x.get<int64_t>() < min) {
      fail(key, "must be a list of integers >= " + std::to_string(min) + " (got " + v.dump() + ")");
    }
    out.push_back(x.get<int64_t>());
  }
  return out;
}

std::vector<std::string> TaskOptions::get_string_list(const std::string& key,
                                                      const std::vector<std::string>& fallback) const {
  if (!j_.contains(key)) return fallback;
  const auto& v = j_[key];
  if (!v.is_array() || v.empty()) fail(key, "must be a non-empty list of strings (got " + v.dump() + ")");
  std::vector<std::string> out;
  for (const auto& x : v) {
    if (!x.is_string()) fail(key, "must be a list of strings (got " + v.dump() + ")");
    out.push_back(x.get<std::string>());
  }
  return out;
}

}  // namespace cvq
