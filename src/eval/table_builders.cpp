#include "eval/table_builders.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <set>
#include <sstream>

#include "eval/tables.h"
#include "tasks/task_registry.h"

namespace cvq {
namespace {

// LongBench scores code completion with fuzzywuzzy's fuzz.ratio, whose result depends on its backend.
constexpr const char* kCodeSimNote =
    "code_sim (lcc, repobench-p): fuzzywuzzy 0.18 fuzz.ratio with its difflib.SequenceMatcher backend — "
    "what LongBench's requirements install (no python-Levenshtein); the Levenshtein backend scores differently.";

bool is_generation_family(const std::string& f) {
  const TaskFamily* family = find_task_family(f);
  return !family || family->generates;
}

std::string fmt(double x, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  return buf;
}

std::string fmt_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) b /= 1024.0, ++u;
  return fmt(b, u == 0 ? 0 : 2) + " " + units[u];
}

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string column_name(const nlohmann::json& run) {
  const auto sweep = run.value("sweep", nlohmann::json::object());
  if (sweep.is_object() && !sweep.empty()) {
    std::string s;
    for (const auto& [k, v] : sweep.items())
      s += (s.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
    return s;
  }
  return run.value("task", "");
}

// "len=1024,depth=0.25" < "len=768,..." as text; compare digit runs as numbers instead.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = std::isdigit(static_cast<unsigned char>(a[i])), db = std::isdigit(static_cast<unsigned char>(b[j]));
    if (da && db) {
      size_t ie = i, je = j;
      while (ie < a.size() && (std::isdigit(static_cast<unsigned char>(a[ie])) || a[ie] == '.')) ++ie;
      while (je < b.size() && (std::isdigit(static_cast<unsigned char>(b[je])) || b[je] == '.')) ++je;
      const double x = std::atof(a.substr(i, ie - i).c_str()), y = std::atof(b.substr(j, je - j).c_str());
      if (x != y) return x < y;
      i = ie, j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

}  // namespace

GroupInfo group_info(const TableInputs& in, const std::string& g) {
  const auto& runs = in.runs;
  const auto& by = in.by;
  const auto& methods = in.methods;
  const auto& instances = in.instances;
  const auto& paper = in.paper;
  GroupInfo gi;
  gi.g = g;
  std::vector<std::string> inst;
  for (const auto& n : instances)
    for (const auto& r : runs)
      if (r.value("task", "") == n && r.value("group", "") == g) {
        if (std::find(inst.begin(), inst.end(), n) == inst.end()) inst.push_back(n);
      }
  if (inst.empty()) return gi;
  // The group's metric and direction from a run that has records (missing runs have none).
  nlohmann::json first;
  for (const auto& n : inst)
    for (const auto& m : methods)
      if (first.is_null() && by.count({n, m}) && by.at({n, m}).contains("metric")) first = by.at({n, m});
  if (first.is_null()) first = by.lower_bound({inst.front(), ""})->second;
  const std::string family = first.value("family", "");
  std::string metric = first.value("metric", family);
  for (const auto& r : runs)
    if (r.value("group", "") == g && r.contains("metric") && r.value("metric", metric) != metric)
      metric = "score (each dataset's own metric)";
  const std::string paper_key = first.value("paper", "");
  const nlohmann::json paper_entry = paper_key.empty() ? nlohmann::json() : paper.value(paper_key, nlohmann::json());
  const bool with_avg = inst.size() > 1 && is_generation_family(family);

  gi.inst = inst;
  gi.first = first;
  gi.family = family;
  gi.metric = metric;
  gi.paper_entry = paper_entry;
  gi.with_avg = with_avg;
  return gi;
}

namespace {

// The group's table: a row per method, a column per instance (+ avg, paper, KV bits/element).
Table group_table(const TableInputs& in, const GroupInfo& gi, std::set<std::string>& notes, bool& notes_code_sim) {
  const auto& runs = in.runs;
  const auto& by = in.by;
  const auto& methods = in.methods;
  const std::string& g = gi.g;
  const std::string& family = gi.family;
  const std::string& metric = gi.metric;
  const std::vector<std::string>& inst = gi.inst;
  const nlohmann::json& first = gi.first;
  const nlohmann::json& paper_entry = gi.paper_entry;
  const bool with_avg = gi.with_avg;
  Table t;
  t.id = g;
  t.title = g + " — " + metric + (first.value("higher_is_better", true) ? " (higher is better)" : " (lower is better)");
  t.header = {"method"};
  for (const auto& n : inst) t.header.push_back(n);
  // Column headers: the sweep values when the group is a sweep.
  for (size_t k = 0; k < inst.size(); ++k) {
    for (const auto& m : methods)
      if (by.count({inst[k], m})) {
        t.header[k + 1] = column_name(by.at({inst[k], m}));
        break;
      }
  }
  if (with_avg) t.header.push_back("avg");
  if (!paper_entry.is_null()) t.header.push_back("paper: " + paper_entry.value("model", std::string("paper")));
  if (family != "memory") t.header.push_back("KV bits/elem");
  for (const auto& m : methods) {
    std::vector<std::string> row{m};
    double sum = 0.0;
    int cnt = 0;
    bool all = true;
    double max_bits = -1.0;
    for (const auto& n : inst) {
      auto it = by.find({n, m});
      if (it == by.end()) {
        row.push_back("—");
        all = false;
        continue;
      }
      row.push_back(format_score(it->second));
      if (it->second.contains("note") && it->second.value("status", "") != "complete" &&
          it->second.value("status", "") != "partial")
        notes.insert(m + ": " + it->second.value("note", ""));
      if (it->second.contains("score") && it->second["score"].is_number() &&
          it->second.value("status", "") == "complete") {
        sum += it->second["score"].get<double>(), ++cnt;
      } else {
        all = false;
      }
      if (it->second.contains("kv_footprint"))
        max_bits = std::max(max_bits, it->second["kv_footprint"].value("bits_per_element", -1.0));
      if (it->second.value("records_beyond_limit", int64_t{0}) > 0)
        notes.insert(m + " / " + n + ": " + std::to_string(it->second["records_beyond_limit"].get<int64_t>()) +
                     " record(s) beyond the sample limit (" + std::to_string(it->second.value("n_expected", 0)) +
                     ", the first samples by index) are in the folder and not counted");
    }
    if (with_avg) {
      std::string not_run = "—";  // no run scored: say why when every cell says the same
      for (size_t k = 1; k < row.size(); ++k) not_run = (k == 1 || row[k] == not_run) ? row[k] : "—";
      if (not_run != "missing" && not_run != "n/a" && not_run != "error") not_run = "—";
      row.push_back(all && cnt > 0 ? fmt(sum / cnt, 2) : (cnt > 0 ? fmt(sum / cnt, 2) + "*" : not_run));
    }
    if (!paper_entry.is_null()) {
      const auto vals = paper_entry.value("values", nlohmann::json::object());
      row.push_back(vals.contains(m) && vals[m].is_number() ? fmt(vals[m].get<double>(), 2) : "");
    }
    if (family != "memory") row.push_back(max_bits >= 0 ? fmt(max_bits, 2) : "—");
    t.rows.push_back(row);
  }
  if (with_avg) t.note = "avg: unweighted mean over the columns (\\* = some runs missing or partial).";
  bool code_sim = false;
  for (const auto& r : runs)
    if (r.value("group", "") == g && r.value("metric", "") == "code_sim") code_sim = true;
  if (code_sim) {
    t.note += std::string(t.note.empty() ? "" : " ") + kCodeSimNote;
    notes_code_sim = true;
  }
  if (!paper_entry.is_null()) {
    t.note += std::string(t.note.empty() ? "" : " ") + "Paper: " + paper_entry.value("metric", std::string("")) + ", " +
              paper_entry.value("model", std::string("")) + " — " + paper_entry.value("source", std::string("")) + ".";
  }

  return t;
}

// Per-cell scores (depth, length x depth) of a single-instance group that records them.
void add_breakdown_table(const TableInputs& in, const GroupInfo& gi, std::vector<Table>& tables) {
  const auto& by = in.by;
  const auto& methods = in.methods;
  const std::string& g = gi.g;
  const std::string& family = gi.family;
  const std::string& metric = gi.metric;
  const std::vector<std::string>& inst = gi.inst;
  // Breakdown table (depth, length×depth) for single-instance groups that have one.
  if (inst.size() == 1 && family != "memory") {
    std::vector<std::string> keys;
    for (const auto& m : methods)
      if (by.count({inst[0], m}) && by.at({inst[0], m}).contains("breakdown"))
        for (const auto& [k, v] : by.at({inst[0], m})["breakdown"].items())
          if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    std::sort(keys.begin(), keys.end(), natural_less);
    // Keys "a=..,b=.." (NIAH: len, depth) pivot into rows (method, b) × columns a.
    bool two_part = !keys.empty();
    std::vector<std::string> cols, sub;
    for (const auto& k : keys) {
      const size_t c = k.find(',');
      if (c == std::string::npos) {
        two_part = false;
        break;
      }
      const std::string a = k.substr(0, c), bpart = k.substr(c + 1);
      if (std::find(cols.begin(), cols.end(), a) == cols.end()) cols.push_back(a);
      if (std::find(sub.begin(), sub.end(), bpart) == sub.end()) sub.push_back(bpart);
    }
    if (!keys.empty()) {
      Table b;
      b.id = g + "_breakdown";
      b.title = g + " — " + metric + " by cell";
      b.header = {"method"};
      if (two_part) {
        std::sort(cols.begin(), cols.end(), natural_less);
        std::sort(sub.begin(), sub.end(), natural_less);
        b.header.push_back("cell");
        b.header.insert(b.header.end(), cols.begin(), cols.end());
      } else {
        b.header.insert(b.header.end(), keys.begin(), keys.end());
      }
      for (const auto& m : methods) {
        const auto bd = by.count({inst[0], m}) ? by.at({inst[0], m}).value("breakdown", nlohmann::json::object())
                                               : nlohmann::json::object();
        if (bd.empty()) continue;
        if (two_part) {
          for (const auto& sp : sub) {
            std::vector<std::string> row{m, sp};
            for (const auto& cp : cols) {
              const std::string k = cp + "," + sp;
              row.push_back(bd.contains(k) ? fmt(bd[k].get<double>(), 2) : "—");
            }
            b.rows.push_back(row);
          }
        } else {
          std::vector<std::string> row{m};
          for (const auto& k : keys) row.push_back(bd.contains(k) ? fmt(bd[k].get<double>(), 2) : "—");
          b.rows.push_back(row);
        }
      }
      tables.push_back(b);
    }
  }
}

// The memory group: bits per element by length, and the fixed cost beside the per-token bytes.
// Context lengths the memory runs measured, ascending.
std::vector<std::string> memory_lengths(const TableInputs& in, const GroupInfo& gi) {
  std::vector<std::string> keys;
  for (const auto& m : in.methods)
    if (in.by.count({gi.inst[0], m}) && in.by.at({gi.inst[0], m}).contains("breakdown"))
      for (const auto& [k, v] : in.by.at({gi.inst[0], m})["breakdown"].items())
        if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  std::sort(keys.begin(), keys.end(),
            [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
  return keys;
}

// KV bits per element by context length, measured / projected, with the paper's number.
Table memory_by_length_table(const TableInputs& in, const GroupInfo& gi, const std::vector<std::string>& keys) {
  const auto& by = in.by;
  const auto& methods = in.methods;
  const std::string& g = gi.g;
  const std::vector<std::string>& inst = gi.inst;
  const nlohmann::json& paper_entry = gi.paper_entry;
  Table b;
  b.id = g + "_by_length";
  b.title = g + " — KV bits per element by context length (measured / projected)";
  b.header = {"method"};
  for (const auto& k : keys) b.header.push_back(k + " tokens");
  b.header.push_back("reduction vs fp16");
  if (!paper_entry.is_null()) b.header.push_back("paper: " + paper_entry.value("model", std::string("paper")));
  for (const auto& m : methods) {
    std::vector<std::string> row{m};
    auto it = by.find({inst[0], m});
    const auto bd = it != by.end() ? it->second.value("breakdown", nlohmann::json::object()) : nlohmann::json::object();
    for (const auto& k : keys) {
      if (!bd.contains(k)) {
        const std::string st = it != by.end() ? format_score(it->second) : "—";
        row.push_back(st == "missing" || st == "n/a" || st == "error" ? st : "—");
        continue;
      }
      const auto& c = bd[k];
      std::string cell =
          c.contains("measured_bits_per_element") ? fmt(c["measured_bits_per_element"].get<double>(), 3) : "—";
      cell += " / ";
      cell += c.contains("projected_bits_per_element") ? fmt(c["projected_bits_per_element"].get<double>(), 3) : "—";
      row.push_back(cell);
    }
    row.push_back(it != by.end() && it->second.contains("extra") &&
                          it->second["extra"].contains("reduction_vs_fp16_percent")
                      ? fmt(it->second["extra"]["reduction_vs_fp16_percent"].get<double>(), 1) + "%"
                      : "—");
    if (!paper_entry.is_null()) {
      const auto vals = paper_entry.value("values", nlohmann::json::object());
      row.push_back(vals.contains(m) && vals[m].is_number() ? fmt(vals[m].get<double>(), 2) : "");
    }
    b.rows.push_back(row);
  }
  b.note =
      "Cells: measured (synthetic activations appended to a fresh cache, then cache.bytes()) / projected "
      "(KvCache::projected_bytes). Codebooks and value encoders are a fixed per-model cost, not in "
      "these bits: see the next table.";
  if (!paper_entry.is_null())
    b.note += " Paper: " + paper_entry.value("metric", std::string("")) + " — " +
              paper_entry.value("source", std::string("")) + ".";
  return b;
}

// The fixed cost (codebooks, value encoders) beside the per-token bytes, as a share at each length.
Table memory_fixed_cost_table(const TableInputs& in, const GroupInfo& gi, const std::vector<std::string>& keys) {
  const auto& by = in.by;
  const auto& methods = in.methods;
  const std::string& g = gi.g;
  const std::vector<std::string>& inst = gi.inst;
  // The fixed cost beside the per-token bytes: how much of the method's memory it is at each length.
  Table f;
  f.id = g + "_fixed_cost";
  f.title = g + " — fixed cost (codebooks, value encoders) beside the per-token KV bytes";
  f.header = {"method", "KV bytes/token", "fixed bytes"};
  for (const auto& k : keys) f.header.push_back("fixed share at " + k + " tokens");
  for (const auto& m : methods) {
    auto it = by.find({inst[0], m});
    if (it == by.end() || !it->second.contains("breakdown")) continue;
    const auto& bd = it->second["breakdown"];
    const std::string longest = keys.back();
    std::vector<std::string> row{m};
    if (bd.contains(longest)) {
      const auto& c = bd[longest];
      const double bytes =
          c.contains("projected_bytes") ? c["projected_bytes"].get<double>() : c.value("measured_bytes", 0.0);
      row.push_back(fmt(bytes / std::stod(longest), 1));
    } else {
      row.push_back("—");
    }
    const double fixed = it->second.value("extra", nlohmann::json::object()).value("fixed_bytes", 0.0);
    row.push_back(fixed > 0 ? fmt_bytes(fixed) : "0");
    for (const auto& k : keys)
      row.push_back(bd.contains(k) && bd[k].contains("fixed_share")
                        ? fmt(100.0 * bd[k]["fixed_share"].get<double>(), 1) + "%"
                        : "—");
    f.rows.push_back(row);
  }
  f.note =
      "KV bytes/token at the longest length (projected, else measured). fixed: the parameters the method holds "
      "whatever the context (CommVQ: key codebooks, value encoder MLP and codebook, float32; KVQuant's "
      "per-layer tables are inside its KV bytes). fixed share at L = fixed / (fixed + KV bytes at L tokens), "
      "for one sequence; a server shares the fixed cost across its sequences.";
  return f;
}

// The memory group's two extra tables.
void add_memory_tables(const TableInputs& in, const GroupInfo& gi, std::vector<Table>& tables) {
  if (gi.family != "memory" || gi.inst.size() != 1) return;
  const std::vector<std::string> keys = memory_lengths(in, gi);
  if (keys.empty()) return;
  tables.push_back(memory_by_length_table(in, gi, keys));
  Table f = memory_fixed_cost_table(in, gi, keys);
  if (!f.rows.empty()) tables.push_back(std::move(f));
}

using MainColumn = std::function<std::string(const std::string& method)>;

// The group's columns in the summary table: its average, or each instance; and the paper's value.
void add_main_columns(const TableInputs& in, const GroupInfo& gi, const Table& t, Table& main,
                      std::vector<MainColumn>& main_cols) {
  const auto& by = in.by;
  const std::string& g = gi.g;
  const std::vector<std::string>& inst = gi.inst;
  const nlohmann::json& paper_entry = gi.paper_entry;
  const bool with_avg = gi.with_avg;
  // Main table columns: the group's headline (avg for several generation instances, else each).
  if (with_avg) {
    const size_t avg_col = 1 + inst.size();
    main.header.push_back(g + " (avg)");
    const Table snapshot = t;
    main_cols.push_back([snapshot, avg_col](const std::string& m) {
      for (const auto& r : snapshot.rows)
        if (r[0] == m) return r[avg_col];
      return std::string("—");
    });
  } else {
    for (size_t k = 0; k < inst.size(); ++k) {
      main.header.push_back(inst.size() == 1 ? g : inst[k]);
      const std::string n = inst[k];
      main_cols.push_back([&by, n](const std::string& m) {
        auto it = by.find({n, m});
        return it == by.end() ? std::string("—") : format_score(it->second);
      });
    }
  }
  if (!paper_entry.is_null()) {
    main.header.push_back(g + " paper");
    const auto vals = paper_entry.value("values", nlohmann::json::object());
    main_cols.push_back([vals](const std::string& m) {
      return vals.contains(m) && vals[m].is_number() ? fmt(vals[m].get<double>(), 2) : std::string("");
    });
  }
}

}  // namespace

std::string Table::markdown() const {
  std::ostringstream o;
  o << "### " << title << "\n\n";
  o << "|";
  for (const auto& h : header) o << " " << h << " |";
  o << "\n|";
  for (size_t i = 0; i < header.size(); ++i) o << (i == 0 ? "---" : "---:") << "|";
  o << "\n";
  for (const auto& r : rows) {
    o << "|";
    for (const auto& c : r) o << " " << c << " |";
    o << "\n";
  }
  if (!note.empty()) o << "\n" << note << "\n";
  return o.str();
}

std::string Table::csv() const {
  std::ostringstream o;
  for (size_t i = 0; i < header.size(); ++i) o << (i ? "," : "") << csv_escape(header[i]);
  o << "\n";
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) o << (i ? "," : "") << csv_escape(r[i]);
    o << "\n";
  }
  return o.str();
}

TableInputs table_inputs(nlohmann::json runs_in, nlohmann::json experiment_in, nlohmann::json paper_in) {
  TableInputs in;
  in.runs = std::move(runs_in);
  in.experiment = std::move(experiment_in);
  in.paper = std::move(paper_in);
  const auto& runs = in.runs;
  const auto& experiment = in.experiment;
  auto& methods = in.methods;
  auto& groups = in.groups;
  auto& instances = in.instances;
  auto& by = in.by;
  // Method order: experiment.json, then any other labels found.
  for (const auto& m : experiment.value("methods", nlohmann::json::array())) methods.push_back(m.value("label", ""));
  for (const auto& r : runs)
    if (std::find(methods.begin(), methods.end(), r.value("method", "")) == methods.end())
      methods.push_back(r.value("method", ""));
  // Group order: experiment.json's task list, then any others.
  for (const auto& t : experiment.value("tasks", nlohmann::json::array())) {
    const std::string g = t.value("group", ""), n = t.value("name", "");
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
    instances.push_back(n);
  }
  for (const auto& r : runs) {
    const std::string g = r.value("group", ""), n = r.value("task", "");
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
    if (std::find(instances.begin(), instances.end(), n) == instances.end()) instances.push_back(n);
  }
  for (const auto& r : runs) by[{r.value("task", ""), r.value("method", "")}] = r;

  return in;
}

std::vector<Table> build_tables(const TableInputs& in) {
  const auto& methods = in.methods;
  std::vector<Table> tables;
  Table main;
  main.id = "main";
  main.title = "Summary — " + in.experiment.value("name", std::string("results")) + " (one column per task group)";
  main.header = {"method"};
  std::vector<MainColumn> main_cols;
  std::set<std::string> notes;
  bool notes_code_sim = false;
  for (const auto& g : in.groups) {
    const GroupInfo gi = group_info(in, g);
    if (gi.inst.empty()) continue;
    const Table t = group_table(in, gi, notes, notes_code_sim);
    tables.push_back(t);
    add_breakdown_table(in, gi, tables);  // each decides whether the group has one
    add_memory_tables(in, gi, tables);
    add_main_columns(in, gi, t, main, main_cols);
  }
  for (const auto& m : methods) {
    std::vector<std::string> row{m};
    for (const auto& f : main_cols) row.push_back(f(m));
    main.rows.push_back(row);
  }
  std::string main_note;
  for (const auto& n : notes) main_note += "- " + n + "\n";
  if (!main_note.empty()) main.note = "Notes:\n\n" + main_note;
  if (notes_code_sim) main.note += std::string(main.note.empty() ? "" : "\n") + kCodeSimNote;
  tables.insert(tables.begin(), main);
  return tables;
}

}  // namespace cvq
