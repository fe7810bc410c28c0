#include "tasks/aggregate.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <utility>

#include "tasks/task_registry.h"

namespace cvq {

double round2(double x) {
  // Python's round(x, 2) rounds the exact binary value correctly (half-even only on exact ties);
  // printf's %.2f rounds the exact value too, with the current (to-nearest-even) mode.
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", x);
  return std::strtod(buf, nullptr);
}

double t_quantile_95(int64_t df) {
  static const double t[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                             2.201, 2.179,  2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080,
                             2.074, 2.069,  2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return std::numeric_limits<double>::infinity();
  return df <= 30 ? t[df] : 1.96;
}

namespace {

// Mean and sample standard deviation.
std::pair<double, double> mean_sd(const std::vector<double>& x) {
  double m = 0.0;
  for (double v : x) m += v;
  m /= static_cast<double>(x.size());
  double ss = 0.0;
  for (double v : x) ss += (v - m) * (v - m);
  return {m, x.size() > 1 ? std::sqrt(ss / static_cast<double>(x.size() - 1)) : 0.0};
}

// 95% interval of a mean of per-sample scores in [0, 1], ×100.
nlohmann::json score_interval(const std::vector<double>& s) {
  const double n = static_cast<double>(s.size());
  if (s.size() < 2) return nullptr;
  bool binary = true;
  for (double v : s) binary = binary && (v == 0.0 || v == 1.0);
  const auto [m, sd] = mean_sd(s);
  if (binary) {  // Wilson score interval
    const double z = 1.959964, z2 = z * z;
    const double centre = (m + z2 / (2 * n)) / (1 + z2 / n);
    const double half = z * std::sqrt(m * (1 - m) / n + z2 / (4 * n * n)) / (1 + z2 / n);
    return {round2(100.0 * std::max(0.0, centre - half)), round2(100.0 * std::min(1.0, centre + half))};
  }
  const double half = t_quantile_95(static_cast<int64_t>(s.size()) - 1) * sd / std::sqrt(n);
  return {round2(100.0 * std::max(0.0, m - half)), round2(100.0 * std::min(1.0, m + half))};
}

double num(const nlohmann::json& r, const char* key) {
  auto it = r.find(key);
  return (it != r.end() && it->is_number()) ? it->get<double>() : 0.0;
}

}  // namespace

void aggregate_perplexity(const std::vector<nlohmann::json>& records, nlohmann::json& out) {
  double nll = 0.0, n = 0.0;
  std::vector<double> window_nll;
  for (const auto& r : records) {
    nll += num(r, "nll_sum"), n += num(r, "n_scored");
    if (num(r, "n_scored") > 0) window_nll.push_back(num(r, "nll_sum") / num(r, "n_scored"));
  }
  out["metric"] = "perplexity";
  out["higher_is_better"] = false;
  out["score"] = std::exp(nll / n);
  out["extra"] = {{"tokens_scored", n}};
  out["interval"] = nullptr;
  if (window_nll.size() >= 2) {
    const double sd = mean_sd(window_nll).second;
    const double half = t_quantile_95(static_cast<int64_t>(window_nll.size()) - 1) * sd /
                        std::sqrt(static_cast<double>(window_nll.size()));
    // Centred on the pooled NLL (the score), with the spread of the windows.
    const double pooled = nll / n;
    out["interval"] = {std::exp(pooled - half), std::exp(pooled + half)};
  }
}

void aggregate_agreement(const std::vector<nlohmann::json>& records, nlohmann::json& out) {
  double agree = 0.0, n = 0.0, kl = 0.0, nll = 0.0, ref_nll = 0.0;
  for (const auto& r : records) {
    agree += num(r, "agree"), n += num(r, "n_scored"), kl += num(r, "kl_sum");
    nll += num(r, "nll_sum"), ref_nll += num(r, "reference_nll_sum");
  }
  out["metric"] = "top1_agreement";
  out["higher_is_better"] = true;
  out["score"] = round2(100.0 * agree / n);
  std::vector<double> rate;
  for (const auto& r : records)
    if (num(r, "n_scored") > 0) rate.push_back(num(r, "agree") / num(r, "n_scored"));
  out["interval"] = nullptr;
  if (rate.size() >= 2) {
    const double sd = mean_sd(rate).second;
    const double half =
        t_quantile_95(static_cast<int64_t>(rate.size()) - 1) * sd / std::sqrt(static_cast<double>(rate.size()));
    const double p = agree / n;
    out["interval"] = {round2(100.0 * std::max(0.0, p - half)), round2(100.0 * std::min(1.0, p + half))};
  }
  out["extra"] = {{"mean_kl", kl / n},
                  {"perplexity", std::exp(nll / n)},
                  {"reference_perplexity", std::exp(ref_nll / n)},
                  {"tokens_scored", n}};
}

void aggregate_memory(const std::vector<nlohmann::json>& records, nlohmann::json& out) {
  const nlohmann::json* longest = nullptr;
  nlohmann::json by_length = nlohmann::json::object();
  for (const auto& r : records) {
    if (!longest || num(r, "length") > num(*longest, "length")) longest = &r;
    nlohmann::json cell = {{"bits_per_element", r.value("bits_per_element", 0.0)}};
    for (const char* k : {"measured_bits_per_element", "projected_bits_per_element", "measured_bytes",
                          "projected_bytes", "fixed_bytes", "fixed_share"})
      if (r.contains(k)) cell[k] = r[k];
    by_length[std::to_string(r.value("length", int64_t{0}))] = cell;
  }
  const double bits = longest->value("bits_per_element", 0.0);
  out["metric"] = "kv_bits_per_element";
  out["higher_is_better"] = false;
  out["score"] = bits;
  out["extra"] = {{"length", longest->value("length", int64_t{0})},
                  {"reduction_vs_fp16_percent", 100.0 * (1.0 - bits / 16.0)},
                  {"bits_source", longest->value("bits_source", "")},
                  {"fixed_bytes", longest->value("fixed_bytes", 0.0)}};
  out["breakdown"] = by_length;
}

void aggregate_scores(const std::vector<nlohmann::json>& records, const std::string& metric, nlohmann::json& out) {
  // Generation tasks: mean of per-sample scores in [0, 1], reported ×100.
  double sum = 0.0;
  std::map<std::string, std::pair<double, int64_t>> extra, groups;
  std::vector<double> scores;
  for (const auto& r : records) {
    const double s = num(r, "score");
    sum += s;
    scores.push_back(s);
    if (auto it = r.find("extra"); it != r.end() && it->is_object()) {
      for (const auto& [k, v] : it->items())
        if (v.is_number()) extra[k].first += v.get<double>(), ++extra[k].second;
    }
    if (auto it = r.find("meta"); it != r.end() && it->is_object() && it->contains("group")) {
      auto& g = groups[(*it)["group"].get<std::string>()];
      g.first += s, ++g.second;
    }
  }
  out["metric"] = metric;
  out["higher_is_better"] = true;
  out["score"] = round2(100.0 * sum / static_cast<double>(records.size()));
  out["interval"] = score_interval(scores);
  out["extra"] = nlohmann::json::object();
  for (const auto& [k, v] : extra) out["extra"][k] = round2(100.0 * v.first / static_cast<double>(v.second));
  if (!groups.empty()) {
    out["breakdown"] = nlohmann::json::object();
    for (const auto& [k, v] : groups) out["breakdown"][k] = round2(100.0 * v.first / static_cast<double>(v.second));
  }
}

nlohmann::json aggregate_records(const std::string& family, const std::vector<nlohmann::json>& records) {
  nlohmann::json out = {{"n", records.size()}};
  if (records.empty()) {
    out["score"] = nullptr;
    return out;
  }
  const TaskFamily* f = find_task_family(family);
  if (f && f->aggregate) {
    f->aggregate(records, out);
  } else {  // generation families (and records of a family this build does not know)
    aggregate_scores(records, f && f->metric ? f->metric(records.front().value("gold", nlohmann::json())) : "score",
                     out);
  }
  return out;
}

}  // namespace cvq
