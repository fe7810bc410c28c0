#pragma once
// The tables `tables` writes (eval/tables.h), built from the merged run summaries of a results
// folder: one table per task group, its breakdown / by-length / fixed-cost tables, and the summary
// table with each group's headline column first. Pure functions of the summaries and the paper's
// numbers; writing files and plots is tables.cpp's job.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace cvq {

struct Table {
  std::string id, title, note;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::string markdown() const;
  std::string csv() const;
};

struct TableInputs {
  nlohmann::json runs, experiment, paper;               // merged summaries, experiment.json, paper.json's entries
  std::vector<std::string> methods, groups, instances;  // in experiment.json's order, then the others
  std::map<std::pair<std::string, std::string>, nlohmann::json> by;  // (instance, method) -> run
};
TableInputs table_inputs(nlohmann::json runs, nlohmann::json experiment, nlohmann::json paper);

// One task group: its instances (in order), family, metric, a run of it with records (`first`), its
// paper entry (null when it names none) and whether it has an average over instances.
struct GroupInfo {
  std::string g, family, metric;
  std::vector<std::string> inst;
  nlohmann::json first, paper_entry;
  bool with_avg = false;
};
GroupInfo group_info(const TableInputs& in, const std::string& g);

// Every table, the summary table ("main") first.
std::vector<Table> build_tables(const TableInputs& in);

}  // namespace cvq
