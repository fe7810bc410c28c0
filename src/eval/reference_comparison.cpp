#include "eval/reference_comparison.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <vector>

#include "eval/results_store.h"
#include "eval/run_identity.h"
#include "tasks/task_registry.h"

namespace cvq {
namespace {

std::string fmt(double x, int decimals, bool sign = false) {
  char buf[64];
  std::snprintf(buf, sizeof buf, sign ? "%+.*f" : "%.*f", decimals, x);
  return buf;
}

bool has_score(const nlohmann::json& r) {
  const std::string st = r.value("status", "");
  return r.contains("score") && r["score"].is_number() && (st == "complete" || st == "partial");
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// What a sample's outcome is, without timing: prediction and score, or a window's NLL.
nlohmann::json outcome(const nlohmann::json& r) {
  nlohmann::json o = nlohmann::json::object();
  for (const char* k : {"prediction", "score", "nll_sum", "n_scored", "agree", "kl_sum", "bits_per_element"})
    if (r.contains(k)) o[k] = r[k];
  return o;
}

// "k/n": of the reference's n samples, how many have the identical outcome in ours.
std::string same_samples(const std::string& ours_dir, const std::string& ref_dir) {
  std::map<std::string, nlohmann::json> ours;
  for (const auto& r : read_run_records(ours_dir, false)) ours[r.value("id", "")] = outcome(r);
  int64_t n = 0, same = 0;
  for (const auto& r : read_run_records(ref_dir, false)) {
    ++n;
    const auto it = ours.find(r.value("id", ""));
    if (it != ours.end() && it->second == outcome(r)) ++same;
  }
  return std::to_string(same) + "/" + std::to_string(n);
}

}  // namespace

ReferenceComparison compare_with_reference(const nlohmann::json& runs, const std::string& results_dir,
                                           const nlohmann::json& reference_runs, const std::string& reference_dir) {
  std::map<std::pair<std::string, std::string>, nlohmann::json> ref;
  for (const auto& r : reference_runs) ref[{r.value("task", ""), r.value("method", "")}] = r;
  const std::vector<std::string> header = {"task",      "method",       "ours",
                                           "reference", "difference",   "reference 95% interval",
                                           "within",    "same samples", "inputs"};
  std::vector<std::vector<std::string>> rows;
  ReferenceComparison out;
  for (const auto& r : runs) {
    const std::string task = r.value("task", ""), method = r.value("method", "");
    const auto it = ref.find({task, method});
    if (it == ref.end()) continue;
    const nlohmann::json& b = it->second;
    const TaskFamily* family = find_task_family(r.value("family", ""));
    const int dec = family ? family->decimals : 2;
    std::vector<std::string> row{task, method};
    if (!has_score(r) || !has_score(b)) {
      row.push_back(has_score(r) ? fmt(r["score"].get<double>(), dec) : r.value("status", "—"));
      row.push_back(has_score(b) ? fmt(b["score"].get<double>(), dec) : b.value("status", "—"));
      row.insert(row.end(), {"—", "—", "—", "—", "—"});
      rows.push_back(row);
      continue;
    }
    const double ours = r["score"].get<double>(), theirs = b["score"].get<double>();
    row.push_back(fmt(ours, dec) + (r.value("status", "") == "partial" ? " (partial)" : ""));
    row.push_back(fmt(theirs, dec) + (b.value("status", "") == "partial" ? " (partial)" : ""));
    row.push_back(fmt(ours - theirs, dec, true));
    ++out.cells;
    const nlohmann::json iv = b.value("interval", nlohmann::json());
    if (iv.is_array() && iv.size() == 2) {
      const double lo = iv[0].get<double>(), hi = iv[1].get<double>();
      row.push_back("[" + fmt(lo, dec) + ", " + fmt(hi, dec) + "]");
      const bool in = ours >= lo - 1e-9 && ours <= hi + 1e-9;
      row.push_back(in ? "yes" : "NO");
      ++(in ? out.within : out.outside);
    } else if (family && family->exact) {  // exact numbers: equal or not
      row.push_back("exact");
      const bool same = std::fabs(ours - theirs) <= 1e-9 * std::max(1.0, std::fabs(theirs));
      row.push_back(same ? "yes" : "NO");
      ++(same ? out.within : out.outside);
    } else {
      row.push_back("— (n < 2)");
      row.push_back("—");
    }
    row.push_back(same_samples(run_dir(results_dir, task, method), run_dir(reference_dir, task, method)));
    const nlohmann::json a_id = r.value("identity", nlohmann::json()), b_id = b.value("identity", nlohmann::json());
    if (b_id.is_null() || a_id.is_null()) {
      row.push_back("unknown");
    } else {
      const std::string change = identity_change(b_id, a_id);
      row.push_back(change.empty() ? "same" : change);
    }
    rows.push_back(row);
  }
  std::ostringstream md, csv;
  md << "### Ours beside the reference run (" << reference_dir << ")\n\n|";
  for (const auto& h : header) md << " " << h << " |";
  md << "\n|";
  for (size_t i = 0; i < header.size(); ++i) md << (i < 2 || i >= 6 ? "---" : "---:") << "|";
  md << "\n";
  for (size_t i = 0; i < header.size(); ++i) csv << (i ? "," : "") << csv_cell(header[i]);
  csv << "\n";
  for (const auto& row : rows) {
    md << "|";
    for (const auto& c : row) md << " " << c << " |";
    md << "\n";
    for (size_t i = 0; i < row.size(); ++i) csv << (i ? "," : "") << csv_cell(row[i]);
    csv << "\n";
  }
  md << "\n"
     << out.within << " of " << out.cells << " cells within the reference's interval"
     << (out.outside ? ", " + std::to_string(out.outside) + " outside" : std::string()) << ". "
     << "difference = ours − reference. within: ours lies inside the reference cell's 95% sampling interval "
        "(Wilson for pass/fail scores, mean ± t·s/√n for graded ones, exp(mean NLL ± t·s/√W) over the windows "
        "for perplexity) — a difference another draw of as many samples could give; memory cells are exact and "
        "must be equal. same samples: of the reference's samples, those with the identical outcome in ours "
        "(prediction and score, or a window's NLL, bit for bit). inputs: \"same\" when both runs read files with the "
        "same sha256 (model, codebooks, data) "
        "under the same settings, else what differs (run.json identities).\n";
  out.markdown = md.str();
  out.csv = csv.str();
  return out;
}

}  // namespace cvq
