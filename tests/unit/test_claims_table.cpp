// The claims table (eval/claims_table.h): our scores and paired differences from the baseline with
// their intervals beside the paper's, for one task and for a group averaged over tasks; a method
// missing a task of a group gets no average; measurement groups (memory) get no claims table.
#include <gtest/gtest.h>

#include <map>

#include "eval/claims_table.h"

namespace cvq {
namespace {

nlohmann::json run(const std::string& task, const std::string& group, const std::string& family,
                   const std::string& method, const std::string& paper, nlohmann::json interval = nullptr) {
  return {{"task", task},   {"group", group}, {"family", family},     {"method", method},
          {"paper", paper}, {"n", 1},         {"interval", interval}, {"score", 0.0}};
}

std::vector<nlohmann::json> recs(const std::vector<double>& scores) {
  std::vector<nlohmann::json> out;
  for (size_t i = 0; i < scores.size(); ++i) {
    std::string id = "s";
    id += std::to_string(i);
    out.push_back({{"id", id}, {"score", scores[i]}});
  }
  return out;
}

const Table* find(const std::vector<Table>& ts, const std::string& id) {
  for (const auto& t : ts)
    if (t.id == id) return &t;
  return nullptr;
}

TEST(ClaimsTable, ScoresAndPairedDifferencesBesideThePaper) {
  nlohmann::json runs = nlohmann::json::array(
      {run("gsm8k", "gsm8k", "gsm8k", "fp16", "gsm8k", {10.0, 90.0}), run("gsm8k", "gsm8k", "gsm8k", "m2", "gsm8k"),
       run("lb-a", "longbench", "longbench", "fp16", "lb"), run("lb-b", "longbench", "longbench", "fp16", "lb"),
       run("lb-a", "longbench", "longbench", "m2", "lb"), run("mem", "memory", "memory", "fp16", "bits"),
       run("mem", "memory", "memory", "m2", "bits")});
  const nlohmann::json experiment = {{"methods", {{{"label", "fp16"}}, {{"label", "m2"}}}}};
  const nlohmann::json paper = {{"gsm8k", {{"model", "P"}, {"values", {{"fp16", 76.27}, {"m2", 76.04}}}}},
                                {"lb", {{"model", "P"}, {"values", {{"fp16", 48.05}}}}},
                                {"bits", {{"model", "P"}, {"values", {{"fp16", 16.0}, {"m2", 2.0}}}}}};
  const TableInputs in = table_inputs(runs, experiment, paper);
  std::map<std::pair<std::string, std::string>, std::vector<double>> scores = {{{"gsm8k", "fp16"}, {1, 1, 0, 1, 0}},
                                                                               {{"gsm8k", "m2"}, {1, 0, 0, 1, 0}},
                                                                               {{"lb-a", "fp16"}, {0.5, 0.7}},
                                                                               {{"lb-b", "fp16"}, {0.2, 0.4, 0.6}},
                                                                               {{"lb-a", "m2"}, {0.4, 0.6}},
                                                                               {{"mem", "fp16"}, {1}},
                                                                               {{"mem", "m2"}, {1}}};
  const auto tables = claims_tables(in, [&](const std::string& i, const std::string& m) {
    const auto it = scores.find({i, m});
    return it == scores.end() ? std::vector<nlohmann::json>{} : recs(it->second);
  });
  EXPECT_EQ(find(tables, "claims_memory"), nullptr) << "a measurement group has no per-sample claims";

  const Table* g = find(tables, "claims_gsm8k");
  ASSERT_NE(g, nullptr);
  ASSERT_EQ(g->rows.size(), 2u);
  // fp16: 60 with the run's own interval; the paper's 76.27.
  EXPECT_EQ(g->rows[0], (std::vector<std::string>{"fp16", "5", "60.00", "[10.00, 90.00]", "—", "", "76.27", "—"}));
  // m2: 40; differences 0, −100, 0, 0, 0: mean −20, sd √2000, ± t(4) = 2.776 · sd/√5 = 55.52.
  EXPECT_EQ(g->rows[1][2], "40.00");
  EXPECT_EQ(g->rows[1][4], "-20.00");
  EXPECT_EQ(g->rows[1][5], "[-75.52, +35.52]");
  EXPECT_EQ(g->rows[1][6], "76.04");
  EXPECT_EQ(g->rows[1][7], "-0.23");

  const Table* lb = find(tables, "claims_longbench");
  ASSERT_NE(lb, nullptr);
  // fp16: tasks 60 and 40 -> 50; ± 1.96 · √(200/2 + 400/3) / 2 = 14.97.
  EXPECT_EQ(lb->rows[0][1], "5 (2 tasks)");
  EXPECT_EQ(lb->rows[0][2], "50.00");
  EXPECT_EQ(lb->rows[0][3], "[35.03, 64.97]");
  // m2 has one of the two tasks: no average.
  EXPECT_EQ(lb->rows[1][2], "— (1/2 tasks)");
}

}  // namespace
}  // namespace cvq
