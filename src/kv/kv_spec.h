#pragma once
// Parsing of method spec strings: "name:key=value,key=value". Options are checked against the
// method's known keys so a typo is an error, not a silently ignored setting.
#include <map>
#include <set>
#include <string>

namespace cvq {

class KvSpec {
 public:
  explicit KvSpec(const std::string& text);

  const std::string& text() const { return text_; }
  const std::string& method() const { return method_; }
  void allow_only(const std::set<std::string>& keys) const;
  bool has(const std::string& key) const { return options_.count(key) != 0; }
  std::string get(const std::string& key, const std::string& fallback) const;
  int get_int(const std::string& key, int fallback) const;
  double get_double(const std::string& key, double fallback) const;
  const std::map<std::string, std::string>& options() const { return options_; }

 private:
  std::string text_, method_;
  std::map<std::string, std::string> options_;
};

}  // namespace cvq
