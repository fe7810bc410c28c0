#include "eval/experiment_config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/resource_paths.h"
#include "tasks/task_registry.h"

namespace cvq {

namespace {

std::string value_name(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

// ${NAME} from the environment, else the config's "vars"; unknown names are errors.
std::string expand_vars(const std::string& s, const nlohmann::json& vars, const std::string& where) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 2, "${") == 0) {
      const size_t end = s.find('}', i + 2);
      if (end == std::string::npos) throw Error(where + ": unterminated ${ in '" + s + "'");
      const std::string name = s.substr(i + 2, end - i - 2);
      if (const char* env = std::getenv(name.c_str()); env && *env) {
        out += env;
      } else if (vars.contains(name) && vars[name].is_string()) {
        out += vars[name].get<std::string>();
      } else {
        throw Error(where + ": '${" + name + "}' is not set (define it under \"vars\" or in the environment)");
      }
      i = end + 1;
    } else {
      out += s[i++];
    }
  }
  return out;
}

nlohmann::json expand_vars_json(const nlohmann::json& j, const nlohmann::json& vars, const std::string& where) {
  if (j.is_string()) return expand_vars(j.get<std::string>(), vars, where);
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& x : j) out.push_back(expand_vars_json(x, vars, where));
    return out;
  }
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : j.items()) out[k] = expand_vars_json(v, vars, where);
    return out;
  }
  return j;
}

void check_keys(const nlohmann::json& j, const std::set<std::string>& keys, const std::string& where) {
  for (const auto& [k, v] : j.items()) {
    if (keys.count(k)) continue;
    std::string known;
    for (const auto& x : keys) known += (known.empty() ? "" : ", ") + x;
    throw Error(where + ": unknown key '" + k + "' (known: " + known + ")");
  }
}

std::string get_str(const nlohmann::json& j, const char* key, const std::string& where, bool required) {
  if (!j.contains(key)) {
    if (required) throw Error(where + ": '" + key + "' is required");
    return "";
  }
  if (!j[key].is_string()) throw Error(where + ": '" + key + "' must be a string");
  return j[key].get<std::string>();
}

}  // namespace

bool is_safe_name(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-' || c == '+' || c == '=';
    if (!ok) return false;
  }
  return true;
}

std::vector<std::string> eval_task_types() { return task_family_names(); }

MethodConfig method_from_cli(const std::string& arg) {
  MethodConfig m;
  const size_t eq = arg.find('=');
  const size_t colon = arg.find(':');
  if (eq != std::string::npos && (colon == std::string::npos || eq < colon)) {
    m.label = arg.substr(0, eq);
    m.kv = arg.substr(eq + 1);
  } else {
    m.kv = arg;
    m.label.clear();
    for (char c : arg) m.label += (c == ':' || c == ',' || c == '/' || c == ' ') ? '_' : c;
  }
  if (!is_safe_name(m.label)) throw Error("--kv '" + arg + "': label '" + m.label + "' must use [A-Za-z0-9._+=-]");
  if (m.kv.empty()) throw Error("--kv '" + arg + "': empty spec");
  return m;
}

namespace {
nlohmann::json typed_cli_value(const std::string& v) {
  if (v == "true") return true;
  if (v == "false") return false;
  if (!v.empty() && (std::isdigit(static_cast<unsigned char>(v[0])) || v[0] == '-' || v[0] == '.')) {
    try {
      const nlohmann::json j = nlohmann::json::parse(v);
      if (j.is_number()) return j;
    } catch (const nlohmann::json::parse_error&) {
    }
  }
  return v;
}
}  // namespace

ExperimentConfig config_from_cli(const std::string& task, const std::vector<std::string>& option_args,
                                 const std::vector<MethodConfig>& methods) {
  const std::string where = "eval --task " + task;
  nlohmann::json entry = {{"name", task}, {"task", task}};
  nlohmann::json sweep = nlohmann::json::object();
  for (size_t i = 0; i < option_args.size(); ++i) {
    const std::string& a = option_args[i];
    if (a.size() < 3 || a.compare(0, 2, "--") != 0)
      throw Error(where + ": unexpected argument '" + a + "' (task options are --name value)");
    std::string name = a.substr(2), value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else {
      if (i + 1 >= option_args.size()) throw Error(where + ": option --" + name + " needs a value");
      value = option_args[++i];
    }
    for (char& c : name)
      if (c == '-') c = '_';
    if (name == "name" || name == "task" || name == "sweep" || name == "limit" || name == "paper")
      throw Error(where + ": --" + name + " is not a task option");
    if (entry.contains(name) || sweep.contains(name)) throw Error(where + ": --" + name + " given twice");
    if (value.find(',') != std::string::npos) {
      nlohmann::json list = nlohmann::json::array();
      size_t from = 0;
      for (size_t comma; (comma = value.find(',', from)) != std::string::npos; from = comma + 1)
        list.push_back(typed_cli_value(value.substr(from, comma - from)));
      list.push_back(typed_cli_value(value.substr(from)));
      sweep[name] = list;
    } else {
      entry[name] = typed_cli_value(value);
    }
  }
  if (!sweep.empty()) entry["sweep"] = sweep;
  nlohmann::json j = {{"name", task}, {"methods", nlohmann::json::array()}, {"tasks", nlohmann::json::array({entry})}};
  for (const auto& m : methods) j["methods"].push_back({{"label", m.label}, {"kv", m.kv}});
  ExperimentConfig c = ExperimentConfig::parse(j, where);
  c.description = "made by `" + where + "` on the command line";
  return c;
}

ExperimentConfig ExperimentConfig::load(const std::string& name) {
  const std::string path = find_experiment_file(name);
  if (!std::filesystem::exists(path)) fail_file(path, "experiment config not found");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    fail_file(path, std::string("not valid JSON: ") + e.what());
  }
  ExperimentConfig c = parse(j, path);
  c.path = path;
  return c;
}

namespace {

// The "methods" list: spec strings or {label, kv, note}; labels unique and safe as folder names.
std::vector<MethodConfig> parse_methods(const nlohmann::json& list, const nlohmann::json& vars,
                                        const std::string& where) {
  std::vector<MethodConfig> out;
  std::set<std::string> labels;
  for (const auto& m : list) {
    MethodConfig mc;
    if (m.is_string()) {
      mc = method_from_cli(expand_vars(m.get<std::string>(), vars, where));
    } else if (m.is_object()) {
      const std::string mw = where + ": method " + m.dump();
      check_keys(m, {"label", "kv", "note"}, mw);
      mc.label = get_str(m, "label", mw, true);
      mc.kv = expand_vars(get_str(m, "kv", mw, true), vars, mw);
      mc.note = get_str(m, "note", mw, false);
      if (!is_safe_name(mc.label)) throw Error(mw + ": label must use [A-Za-z0-9._+=-]");
    } else {
      throw Error(where + ": each method must be a spec string or {\"label\", \"kv\"}");
    }
    if (!labels.insert(mc.label).second) throw Error(where + ": duplicate method label '" + mc.label + "'");
    out.push_back(mc);
  }
  return out;
}

// The "tasks" list: each entry's options (with ${VARS} expanded and the config's seed as default),
// expanded into one instance per combination of its "sweep" lists.
std::vector<TaskInstanceConfig> parse_tasks(const nlohmann::json& list, const nlohmann::json& vars, uint64_t seed,
                                            const std::string& where) {
  const auto types = eval_task_types();
  std::set<std::string> names, groups;
  std::vector<TaskInstanceConfig> out;
  for (const auto& t : list) {
    if (!t.is_object()) throw Error(where + ": each task must be an object");
    const std::string group = get_str(t, "name", where + ": task " + t.dump().substr(0, 80), true);
    const std::string tw = where + ": task '" + group + "'";
    if (!is_safe_name(group)) throw Error(tw + ": name must use [A-Za-z0-9._+=-]");
    if (!groups.insert(group).second) throw Error(tw + ": duplicate task name");
    const std::string type = get_str(t, "task", tw, true);
    if (std::find(types.begin(), types.end(), type) == types.end()) {
      std::string known;
      for (const auto& x : types) known += (known.empty() ? "" : ", ") + x;
      throw Error(tw + ": unknown task '" + type + "' (known: " + known + ")");
    }
    nlohmann::json options = nlohmann::json::object();
    nlohmann::json sweep = nlohmann::json::object();
    std::string paper;
    int64_t limit = -1;
    for (const auto& [k, v] : t.items()) {
      if (k == "name" || k == "task") continue;
      if (k == "sweep") {
        if (!v.is_object() || v.empty()) throw Error(tw + ": 'sweep' must be an object of non-empty lists");
        for (const auto& [sk, sv] : v.items()) {
          if (!sv.is_array() || sv.empty()) throw Error(tw + ": sweep '" + sk + "' must be a non-empty list");
          if (t.contains(sk)) throw Error(tw + ": '" + sk + "' is both set and swept");
        }
        sweep = v;
      } else if (k == "limit") {
        if (!v.is_number_unsigned()) throw Error(tw + ": 'limit' must be a non-negative integer");
        limit = v.get<int64_t>();
      } else if (k == "paper") {
        if (!v.is_string()) throw Error(tw + ": 'paper' must be a key of experiments/paper.json");
        paper = v.get<std::string>();
      } else {
        options[k] = expand_vars_json(v, vars, tw);
      }
    }
    if (!options.contains("seed")) options["seed"] = seed;
    // Cartesian product of the sweep lists (keys in sorted order, values in list order).
    std::vector<nlohmann::json> combos{nlohmann::json::object()};
    for (const auto& [sk, sv] : sweep.items()) {
      std::vector<nlohmann::json> next;
      for (const auto& base : combos)
        for (const auto& val : sv) {
          nlohmann::json x = base;
          x[sk] = val;
          next.push_back(x);
        }
      combos = std::move(next);
    }
    for (const auto& combo : combos) {
      TaskInstanceConfig inst;
      inst.group = group;
      inst.type = type;
      inst.paper = paper;
      inst.limit = limit;
      inst.options = options;
      inst.sweep = combo;
      inst.name = group;
      for (const auto& [sk, sv] : combo.items()) {
        inst.options[sk] = expand_vars_json(sv, vars, tw);
        inst.name.push_back('-');
        inst.name.append(value_name(sv));
      }
      if (!is_safe_name(inst.name)) throw Error(tw + ": instance name '" + inst.name + "' is not a safe folder name");
      if (!names.insert(inst.name).second) throw Error(tw + ": instance name '" + inst.name + "' is used twice");
      inst.where = where + ": task '" + inst.name + "'";
      out.push_back(inst);
    }
  }
  return out;
}

}  // namespace

ExperimentConfig ExperimentConfig::parse(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": an experiment config must be a JSON object");
  check_keys(j, {"name", "description", "model", "matmul", "seed", "vars", "methods", "tasks", "notes"}, where);
  ExperimentConfig c;
  c.raw = j;
  c.name = get_str(j, "name", where, true);
  if (!is_safe_name(c.name)) throw Error(where + ": name '" + c.name + "' must use [A-Za-z0-9._+=-]");
  c.description = get_str(j, "description", where, false);
  c.notes = get_str(j, "notes", where, false);
  const nlohmann::json vars = j.value("vars", nlohmann::json::object());
  if (!vars.is_object()) throw Error(where + ": 'vars' must be an object of strings");
  c.model = expand_vars(get_str(j, "model", where, false), vars, where);
  c.matmul = get_str(j, "matmul", where, false);
  if (!c.matmul.empty() && c.matmul != "fp32" && c.matmul != "bf16") {
    throw Error(where + ": 'matmul' must be fp32 or bf16 (got '" + c.matmul + "')");
  }
  if (j.contains("seed")) {
    if (!j["seed"].is_number_unsigned()) throw Error(where + ": 'seed' must be a non-negative integer");
    c.seed = j["seed"].get<uint64_t>();
  }
  if (!j.contains("methods") || !j["methods"].is_array() || j["methods"].empty())
    throw Error(where + ": 'methods' must be a non-empty list");
  c.methods = parse_methods(j["methods"], vars, where);
  if (!j.contains("tasks") || !j["tasks"].is_array() || j["tasks"].empty())
    throw Error(where + ": 'tasks' must be a non-empty list");
  c.tasks = parse_tasks(j["tasks"], vars, c.seed, where);
  return c;
}

std::vector<std::string> ExperimentConfig::groups() const {
  std::vector<std::string> out;
  for (const auto& t : tasks)
    if (out.empty() || out.back() != t.group) out.push_back(t.group);
  return out;
}

std::unique_ptr<EvalTask> make_eval_task(const TaskInstanceConfig& t) {
  const TaskOptions o(t.options, t.where);
  const TaskFamily* family = find_task_family(t.type);
  if (!family) throw Error(t.where + ": unknown task type '" + t.type + "'");
  try {
    return family->make(o);
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(t.where, 0) == 0) throw;
    throw Error(t.where + ": " + msg);
  }
}

}  // namespace cvq
