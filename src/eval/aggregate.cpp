#include "eval/aggregate.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "tasks/scoring.h"

namespace cvq {

double round2(double x) {
  // Python's round(x, 2) rounds the exact binary value correctly (half-even only on exact ties);
  // printf's %.2f rounds the exact value too, with the current (to-nearest-even) mode.
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", x);
  return std::strtod(buf, nullptr);
}

namespace {

double num(const nlohmann::json& r, const char* key) {
  auto it = r.find(key);
  return (it != r.end() && it->is_number()) ? it->get<double>() : 0.0;
}

}  // namespace

nlohmann::json aggregate_records(const std::string& family, const std::vector<nlohmann::json>& records) {
  nlohmann::json out = {{"n", records.size()}};
  if (records.empty()) {
    out["score"] = nullptr;
    return out;
  }
  if (family == "perplexity") {
    double nll = 0.0, n = 0.0;
    for (const auto& r : records) nll += num(r, "nll_sum"), n += num(r, "n_scored");
    out["metric"] = "perplexity";
    out["higher_is_better"] = false;
    out["score"] = std::exp(nll / n);
    out["extra"] = {{"tokens_scored", n}};
    return out;
  }
  if (family == "agreement") {
    double agree = 0.0, n = 0.0, kl = 0.0, nll = 0.0, ref_nll = 0.0;
    for (const auto& r : records) {
      agree += num(r, "agree"), n += num(r, "n_scored"), kl += num(r, "kl_sum");
      nll += num(r, "nll_sum"), ref_nll += num(r, "reference_nll_sum");
    }
    out["metric"] = "top1_agreement";
    out["higher_is_better"] = true;
    out["score"] = round2(100.0 * agree / n);
    out["extra"] = {{"mean_kl", kl / n},
                    {"perplexity", std::exp(nll / n)},
                    {"reference_perplexity", std::exp(ref_nll / n)},
                    {"tokens_scored", n}};
    return out;
  }
  if (family == "memory") {
    const nlohmann::json* longest = nullptr;
    nlohmann::json by_length = nlohmann::json::object();
    for (const auto& r : records) {
      if (!longest || num(r, "length") > num(*longest, "length")) longest = &r;
      nlohmann::json cell = {{"bits_per_element", r.value("bits_per_element", 0.0)}};
      for (const char* k : {"measured_bits_per_element", "projected_bits_per_element", "measured_bytes", "projected_bytes"})
        if (r.contains(k)) cell[k] = r[k];
      by_length[std::to_string(r.value("length", int64_t{0}))] = cell;
    }
    const double bits = longest->value("bits_per_element", 0.0);
    out["metric"] = "kv_bits_per_element";
    out["higher_is_better"] = false;
    out["score"] = bits;
    out["extra"] = {{"length", longest->value("length", int64_t{0})},
                    {"reduction_vs_fp16_percent", 100.0 * (1.0 - bits / 16.0)},
                    {"bits_source", longest->value("bits_source", "")}};
    out["breakdown"] = by_length;
    return out;
  }
  // Generation tasks: mean of per-sample scores in [0, 1], reported ×100.
  double sum = 0.0;
  std::map<std::string, std::pair<double, int64_t>> extra, groups;
  for (const auto& r : records) {
    const double s = num(r, "score");
    sum += s;
    if (auto it = r.find("extra"); it != r.end() && it->is_object()) {
      for (const auto& [k, v] : it->items())
        if (v.is_number()) extra[k].first += v.get<double>(), ++extra[k].second;
    }
    if (auto it = r.find("meta"); it != r.end() && it->is_object() && it->contains("group")) {
      auto& g = groups[(*it)["group"].get<std::string>()];
      g.first += s, ++g.second;
    }
  }
  out["metric"] = family_metric(family, records.front().value("gold", nlohmann::json()));
  out["higher_is_better"] = true;
  out["score"] = round2(100.0 * sum / static_cast<double>(records.size()));
  out["extra"] = nlohmann::json::object();
  for (const auto& [k, v] : extra) out["extra"][k] = round2(100.0 * v.first / static_cast<double>(v.second));
  if (!groups.empty()) {
    out["breakdown"] = nlohmann::json::object();
    for (const auto& [k, v] : groups) out["breakdown"][k] = round2(100.0 * v.first / static_cast<double>(v.second));
  }
  return out;
}

}  // namespace cvq
