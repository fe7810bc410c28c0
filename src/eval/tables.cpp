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
#include "core/resource_paths.h"
#include "eval/claims_table.h"
#include "eval/grid_runner.h"
#include "eval/reference_comparison.h"
#include "eval/results_store.h"
#include "eval/table_builders.h"
#include "tasks/task_registry.h"

namespace cvq {

namespace fs = std::filesystem;

namespace {

std::string fmt(double x, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  return buf;
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

// `info` is the run's run.json: a run with no summary yet (a copy of a running grid's records) takes
// its sample limit from there.
SummaryFiles read_summaries(const std::string& dir, const nlohmann::json& info) {
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
  if (out.sample_limit < 0) out.sample_limit = info.value("sample_limit", int64_t{-1});
  return out;
}

// The records a run counts: those with index < the summaries' sample limit (a folder may also hold
// records made under a larger limit earlier: kept, not counted); `beyond` counts the others.
std::vector<nlohmann::json> counted_records(const std::string& dir, const SummaryFiles& sf, int64_t* beyond) {
  std::vector<nlohmann::json> records;
  for (auto& r : read_run_records(dir, false)) {
    if (sf.sample_limit < 0 || r.value("index", int64_t{0}) < sf.sample_limit)
      records.push_back(std::move(r));
    else if (beyond)
      ++*beyond;
  }
  return records;
}

}  // namespace

std::string format_score(const nlohmann::json& run) {
  const std::string status = run.value("status", "");
  if (status == "missing") return "missing";
  if (status == "unavailable") return "n/a";
  if (status == "error" && (!run.contains("score") || run["score"].is_null())) return "error";
  if (!run.contains("score") || run["score"].is_null()) return "—";
  std::string s = fmt(run["score"].get<double>(), decimals_for(run.value("family", "")));
  if (status == "partial")
    s += " (" + std::to_string(run.value("n", 0)) + "/" + std::to_string(run.value("n_expected", 0)) + ")";
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
  if (!fs::is_directory(root))
    fail_file(results_dir, "no runs/ folder here (is this an `eval --config --out` folder?)");
  std::vector<std::string> dirs;
  for (const auto& t : fs::directory_iterator(root))
    if (t.is_directory())
      for (const auto& m : fs::directory_iterator(t.path()))
        if (m.is_directory() && fs::exists(m.path() / "run.json")) dirs.push_back(m.path().string());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    const nlohmann::json info = read_json_file(dir + "/run.json");
    const SummaryFiles sf = read_summaries(dir, info);
    int64_t beyond = 0;
    const std::vector<nlohmann::json> records = counted_records(dir, sf, &beyond);
    const int64_t n_expected = sf.n_expected >= 0     ? sf.n_expected
                               : sf.sample_limit >= 0 ? sf.sample_limit
                                                      : info.value("size", int64_t{0});
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

namespace {

// PNG plots from summary.json by scripts/plot.py, with the first interpreter that has matplotlib;
// out.python and out.plot_note say which one, or why there are none.
void draw_plots(const TablesOptions& opt, const std::string& summary_path, TablesResult& out) {
  const std::string script = share_dir() + "/scripts/plot.py";
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
    const std::string cmd =
        "'" + out.python + "' '" + script + "' --summary '" + summary_path + "' --out '" + opt.out_dir + "'";
    const int rc = std::system(cmd.c_str());
    if (rc != 0) out.plot_note = "plot.py failed (exit " + std::to_string(WEXITSTATUS(rc)) + "): " + cmd;
  }
}

}  // namespace

TablesResult make_tables(const TablesOptions& opt) {
  TablesResult out;
  const nlohmann::json runs = merge_results(opt.results_dir);
  nlohmann::json experiment = nlohmann::json::object();
  if (fs::exists(opt.results_dir + "/experiment.json"))
    experiment = read_json_file(opt.results_dir + "/experiment.json");
  const std::string paper_path = opt.paper_path.empty() ? share_dir() + "/experiments/paper.json" : opt.paper_path;
  nlohmann::json paper = nlohmann::json::object();
  if (fs::exists(paper_path)) {
    paper = read_json_file(paper_path).value("entries", nlohmann::json::object());
  } else if (!opt.paper_path.empty()) {
    fail_file(paper_path, "paper numbers file not found");
  }

  const TableInputs in = table_inputs(runs, experiment, paper);
  const auto& methods = in.methods;
  const auto& instances = in.instances;
  const auto& groups = in.groups;
  const auto& by = in.by;
  fs::create_directories(opt.out_dir);
  std::vector<Table> tables = build_tables(in);
  const RecordsOf records_of = [&](const std::string& instance, const std::string& method) {
    const std::string dir = opt.results_dir + "/runs/" + instance + "/" + method;
    if (!fs::exists(dir + "/run.json")) return std::vector<nlohmann::json>{};
    return counted_records(dir, read_summaries(dir, read_json_file(dir + "/run.json")), nullptr);
  };
  for (Table& t : claims_tables(in, records_of)) tables.insert(tables.begin() + 1, std::move(t));

  // Files: one .md and .csv per table, plus results.md with everything.
  std::ostringstream all;
  all << "# " << experiment.value("name", std::string("results")) << "\n\n";
  if (!experiment.value("description", std::string("")).empty())
    all << experiment["description"].get<std::string>() << "\n\n";
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
  out.summary = {{"experiment", experiment.value("name", std::string(""))},
                 {"runs", runs},
                 {"methods", methods},
                 {"groups", groups},
                 {"paper", paper}};
  const std::string summary_path = opt.out_dir + "/summary.json";
  write_file_atomic(summary_path, out.summary.dump(2) + "\n");
  out.files.push_back(summary_path);

  if (!opt.reference_dir.empty()) {
    nlohmann::json ordered = nlohmann::json::array();  // the tables' order: tasks, then methods
    for (const auto& n : instances)
      for (const auto& m : methods)
        if (by.count({n, m})) ordered.push_back(by.at({n, m}));
    const ReferenceComparison c =
        compare_with_reference(ordered, opt.results_dir, merge_results(opt.reference_dir), opt.reference_dir);
    write_file_atomic(opt.out_dir + "/reference.md", c.markdown);
    write_file_atomic(opt.out_dir + "/reference.csv", c.csv);
    out.files.push_back(opt.out_dir + "/reference.md"), out.files.push_back(opt.out_dir + "/reference.csv");
    out.reference_md = c.markdown;
    out.reference_cells = c.cells, out.reference_within = c.within, out.reference_outside = c.outside;
  }

  if (opt.plots) {
    draw_plots(opt, summary_path, out);
  } else {
    out.plot_note = "plots skipped (--no-plots)";
  }
  return out;
}

}  // namespace cvq
