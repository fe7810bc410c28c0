#include "eval/claims_table.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "tasks/aggregate.h"
#include "tasks/task_registry.h"

namespace cvq {
namespace {

std::string fmt2(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", x);
  return buf;
}

std::string signed2(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.2f", x);
  return buf;
}

std::string interval_text(double lo, double hi, bool with_sign) {
  char buf[128];
  std::snprintf(buf, sizeof buf, with_sign ? "[%+.2f, %+.2f]" : "[%.2f, %.2f]", lo, hi);
  return buf;
}

// Per-sample scores ×100 by sample id; records without a numeric score are left out.
std::map<std::string, double> scores_by_id(const std::vector<nlohmann::json>& records) {
  std::map<std::string, double> out;
  for (const auto& r : records) {
    const auto it = r.find("score");
    if (it == r.end() || !it->is_number() || !r.contains("id")) continue;
    out[r["id"].is_string() ? r["id"].get<std::string>() : r["id"].dump()] = 100.0 * it->get<double>();
  }
  return out;
}

struct MeanVar {
  double mean = 0.0, var_of_mean = 0.0, sd = 0.0;
  int64_t n = 0;
};
MeanVar mean_var(const std::vector<double>& x) {
  MeanVar m;
  m.n = static_cast<int64_t>(x.size());
  if (x.empty()) return m;
  for (double v : x) m.mean += v;
  m.mean /= static_cast<double>(m.n);
  double ss = 0.0;
  for (double v : x) ss += (v - m.mean) * (v - m.mean);
  m.sd = m.n > 1 ? std::sqrt(ss / static_cast<double>(m.n - 1)) : 0.0;
  m.var_of_mean = m.n > 1 ? m.sd * m.sd / static_cast<double>(m.n) : NAN;
  return m;
}

}  // namespace

std::vector<Table> claims_tables(const TableInputs& in, const RecordsOf& records_of) {
  std::vector<Table> tables;
  if (in.methods.empty()) return tables;
  const std::string base = in.methods.front();
  for (const auto& g : in.groups) {
    const GroupInfo gi = group_info(in, g);
    const std::vector<std::string>& inst = gi.inst;
    if (inst.empty() || gi.paper_entry.is_null()) continue;
    const TaskFamily* tf = find_task_family(gi.family);
    if (!tf || !tf->generates) continue;  // per-sample task scores only (not memory, perplexity)
    const nlohmann::json& entry = gi.paper_entry;
    const nlohmann::json values = entry.value("values", nlohmann::json::object());

    // Scores of every (instance, method) that has records.
    std::map<std::pair<std::string, std::string>, std::map<std::string, double>> scores;
    for (const auto& n : inst)
      for (const auto& m : in.methods)
        if (in.by.count({n, m})) {
          auto s = scores_by_id(records_of(n, m));
          if (!s.empty()) scores[{n, m}] = std::move(s);
        }
    if (scores.empty()) continue;

    const int64_t T = static_cast<int64_t>(inst.size());
    Table t;
    t.id = "claims_" + g;
    t.title = g + " — ours beside the paper's claims (vs " + base + ", paired by sample)";
    t.header = {"method",
                "n",
                "ours",
                "95% interval",
                "ours − " + base,
                "95% interval",
                "paper: " + entry.value("model", std::string("paper")),
                "paper − " + base};
    for (const auto& m : in.methods) {
      std::vector<std::string> row{m};
      int64_t n_total = 0, n_paired = 0, tasks_with = 0;
      double sum_mean = 0.0, sum_var = 0.0, sum_diff = 0.0, sum_diff_var = 0.0;
      MeanVar single_diff;
      bool paired_all = true;
      for (const auto& n : inst) {
        const auto it = scores.find({n, m});
        if (it == scores.end()) continue;
        ++tasks_with;
        std::vector<double> x;
        for (const auto& [id, s] : it->second) x.push_back(s);
        const MeanVar mv = mean_var(x);
        n_total += mv.n;
        sum_mean += round2(mv.mean);  // as the task's own score, which the summary tables average
        sum_var += mv.var_of_mean;
        const auto bt = scores.find({n, base});
        if (bt == scores.end()) {
          paired_all = false;
          continue;
        }
        std::vector<double> d;
        for (const auto& [id, s] : it->second)
          if (const auto b = bt->second.find(id); b != bt->second.end()) d.push_back(s - b->second);
        const MeanVar dv = mean_var(d);
        n_paired += dv.n;
        sum_diff += dv.mean;
        sum_diff_var += dv.var_of_mean;
        single_diff = dv;
      }
      if (tasks_with < T) {
        row.push_back(std::to_string(n_total));
        row.push_back(tasks_with == 0 ? "—" : "— (" + std::to_string(tasks_with) + "/" + std::to_string(T) + " tasks)");
        row.insert(row.end(), {"", "", ""});
      } else {
        const double score = sum_mean / static_cast<double>(T);
        row.push_back(T == 1 ? std::to_string(n_total)
                             : std::to_string(n_total) + " (" + std::to_string(T) + " tasks)");
        row.push_back(fmt2(score));
        const nlohmann::json& run = in.by.at({inst.front(), m});
        if (T == 1 && run.contains("interval") && run["interval"].is_array() && run["interval"].size() == 2) {
          row.push_back(interval_text(run["interval"][0].get<double>(), run["interval"][1].get<double>(), false));
        } else if (std::isfinite(sum_var)) {
          const double half = 1.96 * std::sqrt(sum_var) / static_cast<double>(T);
          row.push_back(interval_text(score - half, score + half, false));
        } else {
          row.push_back("");
        }
        if (m == base || !paired_all) {
          row.insert(row.end(), {m == base ? "—" : "", ""});
        } else {
          const double diff = sum_diff / static_cast<double>(T);
          double half = NAN;
          if (T == 1 && single_diff.n > 1) {
            half = t_quantile_95(single_diff.n - 1) * single_diff.sd / std::sqrt(static_cast<double>(single_diff.n));
          } else if (T > 1 && std::isfinite(sum_diff_var)) {
            half = 1.96 * std::sqrt(sum_diff_var) / static_cast<double>(T);
          }
          row.push_back(signed2(diff) + (n_paired != n_total ? " (n " + std::to_string(n_paired) + ")" : ""));
          row.push_back(std::isfinite(half) ? interval_text(diff - half, diff + half, true) : "");
        }
      }
      if (values.contains(m) && values[m].is_number()) {
        row.push_back(fmt2(values[m].get<double>()));
        row.push_back(m != base && values.contains(base) && values[base].is_number()
                          ? signed2(values[m].get<double>() - values[base].get<double>())
                          : (m == base ? "—" : ""));
      } else {
        row.insert(row.end(), {"", ""});
      }
      t.rows.push_back(row);
    }
    t.note = "Scores ×100. " +
             std::string(T == 1 ? "The interval of a score is the run's own (Wilson for 0/1 scores, mean ± t·s/√n "
                                  "otherwise); a difference is the mean of per-sample differences over the samples "
                                  "both methods have, ± t·s/√n."
                                : "The score is the unweighted mean of the " + std::to_string(T) +
                                      " tasks' means (as the paper's average); its interval and the difference's "
                                      "are ± 1.96·√(Σ s_i²/n_i)/" +
                                      std::to_string(T) +
                                      " over the tasks (independent task means; differences paired by sample "
                                      "within each task). A method missing a task has no average.") +
             " Paper: " + entry.value("metric", std::string("")) + ", " + entry.value("model", std::string("")) +
             " — " + entry.value("source", std::string("")) +
             ". Compare the differences from fp16, not the absolute scores: the models differ.";
    tables.push_back(std::move(t));
  }
  return tables;
}

}  // namespace cvq
