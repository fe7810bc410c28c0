#include "kv/kv_spec.h"

#include <cstdlib>

#include "core/error.h"

namespace cvq {

KvSpec::KvSpec(const std::string& text) : text_(text) {
  auto colon = text.find(':');
  method_ = text.substr(0, colon);
  if (method_.empty()) throw Error("KV method spec '" + text + "': empty method name");
  if (colon == std::string::npos) return;
  std::string rest = text.substr(colon + 1);
  size_t start = 0;
  while (start <= rest.size()) {
    size_t comma = rest.find(',', start);
    std::string item = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    auto eq = item.find('=');
    if (item.empty() || eq == std::string::npos || eq == 0) {
      throw Error("KV method spec '" + text + "': option '" + item + "' is not key=value");
    }
    if (!options_.emplace(item.substr(0, eq), item.substr(eq + 1)).second) {
      throw Error("KV method spec '" + text + "': option '" + item.substr(0, eq) + "' given twice");
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
}

void KvSpec::allow_only(const std::set<std::string>& keys) const {
  for (const auto& [k, v] : options_) {
    if (!keys.count(k)) {
      std::string known;
      for (const auto& a : keys) known += (known.empty() ? "" : ", ") + a;
      throw Error("KV method spec '" + text_ + "': unknown option '" + k + "' for method '" + method_ +
                  "' (known: " + (known.empty() ? "none" : known) + ")");
    }
  }
}

std::string KvSpec::get(const std::string& key, const std::string& fallback) const {
  auto it = options_.find(key);
  return it == options_.end() ? fallback : it->second;
}

int KvSpec::get_int(const std::string& key, int fallback) const {
  auto it = options_.find(key);
  if (it == options_.end()) return fallback;
  char* end = nullptr;
  long v = std::strtol(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0') {
    throw Error("KV method spec '" + text_ + "': option " + key + "=" + it->second + " is not an integer");
  }
  return static_cast<int>(v);
}

double KvSpec::get_double(const std::string& key, double fallback) const {
  auto it = options_.find(key);
  if (it == options_.end()) return fallback;
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0') {
    throw Error("KV method spec '" + text_ + "': option " + key + "=" + it->second + " is not a number");
  }
  return v;
}

}  // namespace cvq
