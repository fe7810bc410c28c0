#include "eval/tables.h"

#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "eval/grid_runner.h"
#include "eval/reference_comparison.h"
#include "eval/results_store.h"
#include "model/model_paths.h"
#include "tasks/task_registry.h"

namespace cvq {

namespace fs = std::filesystem;

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

int decimals_for(const std::string& family) {
  const TaskFamily* f = find_task_family(family);
  return f ? f->decimals : 2;
}

// Merges the summary files of one run folder: status/notes, expected counts and session timing.
struct SummaryFiles {
  std::string status, note;
  int64_t n_expected = -1;
  int64_t sample_limit = -1;  // records with index >= this were made under a larger --limit
  double session_seconds = 0.0;
  int64_t peak_rss = -1;
};

SummaryFiles read_summaries(const std::string& dir) {
  SummaryFiles out;
  std::map<int, int64_t> expected_by_count;  // shard count -> summed n_expected
  std::vector<std::string> files = list_files(dir, "summary", ".json");
  // Oldest first: the newest file's status and note win (a later session may have fixed an error).
  std::stable_sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
    return fs::last_write_time(a) < fs::last_write_time(b);
  });
  for (const auto& f : files) {
    const nlohmann::json s = read_json_file(f);
    const std::string st = s.value("status", "");
    out.status = (st == "missing" || st == "unavailable" || st == "error") ? st : "";
    out.note = s.value("note", "");
    const std::string name = fs::path(f).filename().string();
    int count = 1;
    if (const size_t p = name.find("-of-"); p != std::string::npos) count = std::atoi(name.c_str() + p + 4);
    expected_by_count[count] += s.value("n_expected", int64_t{0});
    out.sample_limit = s.value("sample_limit", int64_t{-1});  // the newest file decides
    const auto t = s.value("timing", nlohmann::json::object());
    out.session_seconds += t.value("session_seconds", 0.0);
    out.peak_rss = std::max<int64_t>(out.peak_rss, t.value("peak_rss_bytes", int64_t{-1}));
  }
  for (const auto& [count, n] : expected_by_count) out.n_expected = std::max(out.n_expected, n);
  return out;
}

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

struct Table {
  std::string id, title, note;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  std::string markdown() const {
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
  std::string csv() const {
    std::ostringstream o;
    for (size_t i = 0; i < header.size(); ++i) o << (i ? "," : "") << csv_escape(header[i]);
    o << "\n";
    for (const auto& r : rows) {
      for (size_t i = 0; i < r.size(); ++i) o << (i ? "," : "") << csv_escape(r[i]);
      o << "\n";
    }
    return o.str();
  }
};

std::string column_name(const nlohmann::json& run) {
  const auto sweep = run.value("sweep", nlohmann::json::object());
  if (sweep.is_object() && !sweep.empty()) {
    std::string s;
    for (const auto& [k, v] : sweep.items()) s += (s.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
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

std::string format_score(const nlohmann::json& run) {
  const std::string status = run.value("status", "");
  if (status == "missing") return "missing";
  if (status == "unavailable") return "n/a";
  if (status == "error" && (!run.contains("score") || run["score"].is_null())) return "error";
  if (!run.contains("score") || run["score"].is_null()) return "—";
  std::string s = fmt(run["score"].get<double>(), decimals_for(run.value("family", "")));
  if (status == "partial") s += " (" + std::to_string(run.value("n", 0)) + "/" + std::to_string(run.value("n_expected", 0)) + ")";
  if (status == "error") s += " (error)";
  return s;
}

std::vector<std::string> plot_interpreters() {
  std::vector<std::string> out;
  if (const char* p = std::getenv("COMMVQ_PYTHON"); p && *p) out.push_back(p);
  out.push_back("/usr/bin/python3");
  out.push_back("python3");
  return out;
}

nlohmann::json merge_results(const std::string& results_dir) {
  nlohmann::json runs = nlohmann::json::array();
  const std::string root = results_dir + "/runs";
  if (!fs::is_directory(root)) fail_file(results_dir, "no runs/ folder here (is this an `eval --config --out` folder?)");
  std::vector<std::string> dirs;
  for (const auto& t : fs::directory_iterator(root))
    if (t.is_directory())
      for (const auto& m : fs::directory_iterator(t.path()))
        if (m.is_directory() && fs::exists(m.path() / "run.json")) dirs.push_back(m.path().string());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    const nlohmann::json info = read_json_file(dir + "/run.json");
    const SummaryFiles sf = read_summaries(dir);
    // The run counts the samples with index < sample_limit (the config's or --limit's first n); a
    // folder may also hold records made under a larger limit earlier: kept, not counted, reported.
    std::vector<nlohmann::json> records;
    int64_t beyond = 0;
    for (auto& r : read_run_records(dir, false)) {
      if (sf.sample_limit < 0 || r.value("index", int64_t{0}) < sf.sample_limit) records.push_back(std::move(r));
      else ++beyond;
    }
    const int64_t n_expected = sf.n_expected >= 0 ? sf.n_expected : info.value("size", int64_t{0});
    nlohmann::json s = summarize_run(info, n_expected, records);
    s["sweep"] = info.value("sweep", nlohmann::json::object());
    s["type"] = info.value("type", "");
    if (beyond > 0) s["records_beyond_limit"] = beyond;
    if (info.contains("identity")) s["identity"] = info["identity"];
    if (!sf.status.empty() && (records.empty() || sf.status == "error")) s["status"] = sf.status;
    if (!sf.note.empty()) s["note"] = sf.note;
    s["timing"]["session_seconds"] = sf.session_seconds;
    if (sf.peak_rss >= 0) s["timing"]["peak_rss_bytes"] = sf.peak_rss;
    runs.push_back(s);
  }
  return runs;
}

TablesResult make_tables(const TablesOptions& opt) {
  TablesResult out;
  const nlohmann::json runs = merge_results(opt.results_dir);
  nlohmann::json experiment = nlohmann::json::object();
  if (fs::exists(opt.results_dir + "/experiment.json")) experiment = read_json_file(opt.results_dir + "/experiment.json");
  const std::string paper_path =
      opt.paper_path.empty() ? project_source_dir() + "/experiments/paper.json" : opt.paper_path;
  nlohmann::json paper = nlohmann::json::object();
  if (fs::exists(paper_path)) {
    paper = read_json_file(paper_path).value("entries", nlohmann::json::object());
  } else if (!opt.paper_path.empty()) {
    fail_file(paper_path, "paper numbers file not found");
  }

  // Method order: experiment.json, then any other labels found.
  std::vector<std::string> methods;
  for (const auto& m : experiment.value("methods", nlohmann::json::array())) methods.push_back(m.value("label", ""));
  for (const auto& r : runs)
    if (std::find(methods.begin(), methods.end(), r.value("method", "")) == methods.end())
      methods.push_back(r.value("method", ""));
  // Group order: experiment.json's task list, then any others.
  std::vector<std::string> groups, instances;
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
  std::map<std::pair<std::string, std::string>, nlohmann::json> by;  // (instance, method) -> run
  for (const auto& r : runs) by[{r.value("task", ""), r.value("method", "")}] = r;

  fs::create_directories(opt.out_dir);
  std::vector<Table> tables;
  Table main;
  main.id = "main";
  main.title = "Summary — " + experiment.value("name", std::string("results")) + " (one column per task group)";
  main.header = {"method"};
  std::vector<std::function<std::string(const std::string&)>> main_cols;
  std::set<std::string> notes;
  bool notes_code_sim = false;

  for (const auto& g : groups) {
    std::vector<std::string> inst;
    for (const auto& n : instances)
      for (const auto& r : runs)
        if (r.value("task", "") == n && r.value("group", "") == g) {
          if (std::find(inst.begin(), inst.end(), n) == inst.end()) inst.push_back(n);
        }
    if (inst.empty()) continue;
    // The group's metric and direction from a run that has records (missing runs have none).
    nlohmann::json first;
    for (const auto& n : inst)
      for (const auto& m : methods)
        if (first.is_null() && by.count({n, m}) && by[{n, m}].contains("metric")) first = by[{n, m}];
    if (first.is_null()) first = by.lower_bound({inst.front(), ""})->second;
    const std::string family = first.value("family", "");
    std::string metric = first.value("metric", family);
    for (const auto& r : runs)
      if (r.value("group", "") == g && r.contains("metric") && r.value("metric", metric) != metric)
        metric = "score (each dataset's own metric)";
    const std::string paper_key = first.value("paper", "");
    const nlohmann::json paper_entry = paper_key.empty() ? nlohmann::json() : paper.value(paper_key, nlohmann::json());
    const bool with_avg = inst.size() > 1 && is_generation_family(family);

    Table t;
    t.id = g;
    t.title = g + " — " + metric + (first.value("higher_is_better", true) ? " (higher is better)" : " (lower is better)");
    t.header = {"method"};
    for (const auto& n : inst) t.header.push_back(n);
    // Column headers: the sweep values when the group is a sweep.
    for (size_t k = 0; k < inst.size(); ++k) {
      for (const auto& m : methods)
        if (by.count({inst[k], m})) {
          t.header[k + 1] = column_name(by[{inst[k], m}]);
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
        if (it->second.contains("score") && it->second["score"].is_number() && it->second.value("status", "") == "complete") {
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
    tables.push_back(t);

    // Breakdown table (depth, length×depth) for single-instance groups that have one.
    if (inst.size() == 1 && family != "memory") {
      std::vector<std::string> keys;
      for (const auto& m : methods)
        if (by.count({inst[0], m}) && by[{inst[0], m}].contains("breakdown"))
          for (const auto& [k, v] : by[{inst[0], m}]["breakdown"].items())
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
          const auto bd = by.count({inst[0], m}) ? by[{inst[0], m}].value("breakdown", nlohmann::json::object())
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
    if (family == "memory" && inst.size() == 1) {
      std::vector<std::string> keys;
      for (const auto& m : methods)
        if (by.count({inst[0], m}) && by[{inst[0], m}].contains("breakdown"))
          for (const auto& [k, v] : by[{inst[0], m}]["breakdown"].items())
            if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
      std::sort(keys.begin(), keys.end(), [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
      if (!keys.empty()) {
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
            std::string cell = c.contains("measured_bits_per_element") ? fmt(c["measured_bits_per_element"].get<double>(), 3) : "—";
            cell += " / ";
            cell += c.contains("projected_bits_per_element") ? fmt(c["projected_bits_per_element"].get<double>(), 3) : "—";
            row.push_back(cell);
          }
          row.push_back(it != by.end() && it->second.contains("extra") && it->second["extra"].contains("reduction_vs_fp16_percent")
                            ? fmt(it->second["extra"]["reduction_vs_fp16_percent"].get<double>(), 1) + "%"
                            : "—");
          if (!paper_entry.is_null()) {
            const auto vals = paper_entry.value("values", nlohmann::json::object());
            row.push_back(vals.contains(m) && vals[m].is_number() ? fmt(vals[m].get<double>(), 2) : "");
          }
          b.rows.push_back(row);
        }
        b.note = "Cells: measured (synthetic activations appended to a fresh cache, then cache.bytes()) / projected "
                 "(KvCache::projected_bytes). Codebooks and value encoders are a fixed per-model cost, not in "
                 "these bits: see the next table.";
        if (!paper_entry.is_null())
          b.note += " Paper: " + paper_entry.value("metric", std::string("")) + " — " + paper_entry.value("source", std::string("")) + ".";
        tables.push_back(b);

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
            const double bytes = c.contains("projected_bytes") ? c["projected_bytes"].get<double>()
                                                               : c.value("measured_bytes", 0.0);
            row.push_back(fmt(bytes / std::stod(longest), 1));
          } else {
            row.push_back("—");
          }
          const double fixed = it->second.value("extra", nlohmann::json::object()).value("fixed_bytes", 0.0);
          row.push_back(fixed > 0 ? fmt_bytes(fixed) : "0");
          for (const auto& k : keys)
            row.push_back(bd.contains(k) && bd[k].contains("fixed_share") ? fmt(100.0 * bd[k]["fixed_share"].get<double>(), 1) + "%"
                                                                          : "—");
          f.rows.push_back(row);
        }
        f.note = "KV bytes/token at the longest length (projected, else measured). fixed: the parameters the method holds "
                 "whatever the context (CommVQ: key codebooks, value encoder MLP and codebook, float32; KVQuant's "
                 "per-layer tables are inside its KV bytes). fixed share at L = fixed / (fixed + KV bytes at L tokens), "
                 "for one sequence; a server shares the fixed cost across its sequences.";
        if (!f.rows.empty()) tables.push_back(f);
      }
    }

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

  // Files: one .md and .csv per table, plus results.md with everything.
  std::ostringstream all;
  all << "# " << experiment.value("name", std::string("results")) << "\n\n";
  if (!experiment.value("description", std::string("")).empty()) all << experiment["description"].get<std::string>() << "\n\n";
  all << "Generated by `commvq-bench tables` from the per-sample records in `" << opt.results_dir
      << "`. Scores are ×100 (LongBench / InfiniteBench convention) except perplexity (exp of the mean NLL) and "
         "KV bits/element; a partial run shows (done/expected). \"KV bits/elem\" in the task tables is the cache's "
         "stored bytes per K/V element at the run's longest context — KvCache::projected_bytes() when the method "
         "has it, else the measured cache.bytes() — so a full-precision window inflates it at short contexts; "
         "the memory table gives the footprint by context length. Paper columns are the published numbers for "
         "the paper's model (see experiments/paper.json), not for this model.\n\n";
  for (const auto& t : tables) {
    const std::string md = opt.out_dir + "/" + t.id + ".md", csv = opt.out_dir + "/" + t.id + ".csv";
    write_file_atomic(md, t.markdown());
    write_file_atomic(csv, t.csv());
    out.files.push_back(md), out.files.push_back(csv);
    all << t.markdown() << "\n";
  }
  write_file_atomic(opt.out_dir + "/results.md", all.str());
  out.files.push_back(opt.out_dir + "/results.md");
  out.summary = {{"experiment", experiment.value("name", std::string(""))}, {"runs", runs}, {"methods", methods},
                 {"groups", groups}, {"paper", paper}};
  const std::string summary_path = opt.out_dir + "/summary.json";
  write_file_atomic(summary_path, out.summary.dump(2) + "\n");
  out.files.push_back(summary_path);

  if (!opt.reference_dir.empty()) {
    nlohmann::json ordered = nlohmann::json::array();  // the tables' order: tasks, then methods
    for (const auto& n : instances)
      for (const auto& m : methods)
        if (by.count({n, m})) ordered.push_back(by[{n, m}]);
    const ReferenceComparison c =
        compare_with_reference(ordered, opt.results_dir, merge_results(opt.reference_dir), opt.reference_dir);
    write_file_atomic(opt.out_dir + "/reference.md", c.markdown);
    write_file_atomic(opt.out_dir + "/reference.csv", c.csv);
    out.files.push_back(opt.out_dir + "/reference.md"), out.files.push_back(opt.out_dir + "/reference.csv");
    out.reference_md = c.markdown;
    out.reference_cells = c.cells, out.reference_within = c.within, out.reference_outside = c.outside;
  }

  if (opt.plots) {
    const std::string script = project_source_dir() + "/scripts/plot.py";
    std::vector<std::string> candidates = opt.python.empty() ? plot_interpreters() : std::vector<std::string>{opt.python};
    for (const auto& py : candidates)
      if (std::system(("'" + py + "' -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0) {
        out.python = py;
        break;
      }
    if (!fs::exists(script)) {
      out.plot_note = script + " not found; no plots";
    } else if (out.python.empty()) {
      std::string tried;
      for (const auto& py : candidates) tried += (tried.empty() ? "" : ", ") + py;
      out.plot_note = "no plots: no python with matplotlib (tried " + tried +
                      "; scripts/setup.sh installs python3-matplotlib for /usr/bin/python3, or set COMMVQ_PYTHON); "
                      "the tables are complete without them";
    } else {
      const std::string cmd = "'" + out.python + "' '" + script + "' --summary '" + summary_path + "' --out '" + opt.out_dir + "'";
      const int rc = std::system(cmd.c_str());
      if (rc != 0) out.plot_note = "plot.py failed (exit " + std::to_string(WEXITSTATUS(rc)) + "): " + cmd;
    }
  } else {
    out.plot_note = "plots skipped (--no-plots)";
  }
  return out;
}

}  // namespace cvq
