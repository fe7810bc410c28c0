#include "eval/run_identity.h"

#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "core/file_hash_cache.h"
#include "core/json_file.h"
#include "eval/results_store.h"
#include "kv/kv_spec.h"
#include "model/model_identity.h"

namespace cvq {
namespace {

namespace fs = std::filesystem;

// KV spec options whose value is a file the method reads.
const std::set<std::string>& kv_file_options() {
  static const std::set<std::string> k = {"codebook", "calib"};
  return k;
}

std::string short_digest(const nlohmann::json& e) {
  const std::string d = e.value("sha256", std::string());
  return d.size() > 12 ? d.substr(0, 12) + "…" : d;
}

std::string input_key(const nlohmann::json& e) {
  const std::string role = e.value("role", std::string());
  if (role == "model") return role;
  return role + ":" + fs::path(e.value("path", std::string())).filename().string();
}

std::string first_difference(const nlohmann::json& a, const nlohmann::json& b, const std::string& prefix = "") {
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (const auto& [k, v] : a.items()) keys.insert(k);
    for (const auto& [k, v] : b.items()) keys.insert(k);
    for (const auto& k : keys) {
      if (!a.contains(k) || !b.contains(k)) return prefix + k;
      if (a[k] != b[k]) return first_difference(a[k], b[k], prefix + k + ".");
    }
  }
  return prefix.empty() ? "(value)" : prefix.substr(0, prefix.size() - 1);
}

std::string value_at(const nlohmann::json& j, const std::string& dotted) {
  const nlohmann::json* p = &j;
  size_t start = 0;
  while (start <= dotted.size()) {
    const size_t dot = dotted.find('.', start);
    const std::string k = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!p->is_object() || !p->contains(k)) return "unset";
    p = &(*p)[k];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  std::string s = p->dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

}  // namespace

std::vector<RunInput> kv_spec_inputs(const std::string& kv_spec) {
  std::vector<RunInput> out;
  const KvSpec spec(kv_spec);
  for (const auto& [k, v] : spec.options())
    if (kv_file_options().count(k) && !v.empty()) out.push_back({k, v});
  return out;
}

std::string kv_spec_without_paths(const std::string& kv_spec) {
  (void)KvSpec(kv_spec);  // well-formed, so the options split as below
  const size_t colon = kv_spec.find(':');
  if (colon == std::string::npos) return kv_spec;
  std::string out = kv_spec.substr(0, colon + 1);
  size_t start = colon + 1;
  bool first = true;
  while (start <= kv_spec.size()) {  // the options in their written order
    const size_t comma = kv_spec.find(',', start);
    std::string item = kv_spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const std::string key = item.substr(0, item.find('='));
    if (kv_file_options().count(key)) item = key + "=<file>";
    out += (first ? "" : ",") + item;
    first = false;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

nlohmann::json input_entry(const RunInput& in) {
  if (!fs::exists(in.path)) fail_file(in.path, "not found (" + in.role + ")");
  if (in.role == "model") {  // a GGUF file or a Hugging Face folder
    return {{"role", in.role}, {"path", in.path}, {"bytes", model_bytes(in.path)}, {"sha256", model_sha256(in.path)}};
  }
  return {{"role", in.role},
          {"path", in.path},
          {"bytes", static_cast<int64_t>(fs::file_size(in.path))},
          {"sha256", sha256_file_cached(in.path)}};
}

nlohmann::json run_identity(const std::string& harness, const nlohmann::json& task_identity, const std::string& kv_spec,
                            const std::vector<nlohmann::json>& input_entries) {
  return {
      {"harness", harness}, {"task", task_identity}, {"kv", kv_spec_without_paths(kv_spec)}, {"inputs", input_entries}};
}

std::string identity_change(const nlohmann::json& before, const nlohmann::json& now) {
  if (!before.is_object() || !before.contains("inputs") || !before["inputs"].is_array())
    return "run.json records no input digests (made by an older commvq-bench)";
  if (before.value("harness", std::string()) != now.value("harness", std::string()))
    return "the evaluation harness differs (" + before.value("harness", std::string("?")) + " then, " +
           now.value("harness", std::string("?")) + " now)";
  // Per role, the files' digests must agree as a set (paths and names may differ). A file without a
  // match is paired, to name it, with the old file of the same name, or the only unmatched old one.
  std::map<std::string, std::vector<nlohmann::json>> old_by_role, new_by_role;
  for (const auto& e : before["inputs"]) old_by_role[e.value("role", std::string())].push_back(e);
  for (const auto& e : now.value("inputs", nlohmann::json::array()))
    new_by_role[e.value("role", std::string())].push_back(e);
  auto unmatched = [](const std::vector<nlohmann::json>& a, const std::vector<nlohmann::json>& b) {
    std::multiset<std::string> digests;
    for (const auto& e : b) digests.insert(e.value("sha256", std::string()));
    std::vector<nlohmann::json> out;
    for (const auto& e : a) {
      const auto it = digests.find(e.value("sha256", std::string()));
      if (it == digests.end())
        out.push_back(e);
      else
        digests.erase(it);
    }
    return out;
  };
  std::set<std::string> roles;
  for (const auto& [r, v] : old_by_role) roles.insert(r);
  for (const auto& [r, v] : new_by_role) roles.insert(r);
  for (const auto& role : roles) {
    const auto added = unmatched(new_by_role[role], old_by_role[role]);
    const auto gone = unmatched(old_by_role[role], new_by_role[role]);
    for (const auto& e : added) {
      const nlohmann::json* was = gone.size() == 1 ? &gone[0] : nullptr;
      for (const auto& g : gone)
        if (input_key(g) == input_key(e)) was = &g;
      const std::string what = e.value("path", std::string()) + " (" + role + ")";
      if (!was) return what + " is read now but was not then";
      return what + " has changed: sha256 " + short_digest(*was) + " then, " + short_digest(e) + " now";
    }
    if (!gone.empty()) return gone[0].value("path", std::string()) + " (" + role + ") was read then but is not now";
  }
  const nlohmann::json bt = before.value("task", nlohmann::json()), nt = now.value("task", nlohmann::json());
  if (bt != nt) {
    const std::string d = first_difference(bt, nt);
    return "task setting '" + d + "' differs (" + value_at(bt, d) + " then, " + value_at(nt, d) + " now)";
  }
  if (before.value("kv", std::string()) != now.value("kv", std::string()))
    return "the KV method spec differs (" + before.value("kv", std::string()) + " then, " +
           now.value("kv", std::string()) + " now)";
  return "";
}

std::string resume_conflict(const std::string& run_dir, const nlohmann::json& identity) {
  const std::string run_json = run_dir + "/run.json";
  if (!fs::exists(run_json) || list_files(run_dir, "samples", ".jsonl").empty()) return "";  // nothing to protect
  const nlohmann::json old = read_json_file(run_json);
  const std::string change = identity_change(old.value("identity", nlohmann::json()), identity);
  if (change.empty()) return "";
  return run_json + ": these results were made from other inputs: " + change;
}

std::string next_run_dir(const std::string& out_dir) {
  std::string base = out_dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  for (int i = 2;; ++i) {
    const std::string candidate = base + "-" + std::to_string(i);
    if (!fs::exists(candidate)) return candidate;
  }
}

}  // namespace cvq
