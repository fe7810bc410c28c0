// `score`: re-score saved predictions (InfiniteBench / LongBench prediction files or this project's
// samples*.jsonl) with the benchmark's own metric, without the model.
#include <cstdio>

#include "cli/commands/common.h"
#include "eval/rescore.h"

namespace cvq {

void register_score(CLI::App& app) {
  struct Opts : CommonOptions {
    std::string task, predictions;
    int show = 3;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("score", "re-score saved predictions (JSONL) with the benchmark's metric");
  add_common_options(*cmd, *o, false);
  cmd->add_option("--task", o->task,
                  "passkey | number_string | kv_retrieval | gsm8k | niah | longbench:<dataset> (or the dataset name) | "
                  "auto (this project's records)")
      ->required();
  cmd->add_option("--predictions", o->predictions, "JSONL file of predictions with their gold answers")->required();
  cmd->add_option("--show-failures", o->show, "print this many wrong predictions")->check(CLI::NonNegativeNumber);
  cmd->callback([o] {
    apply_common_options(*o);
    const RescoreResult r = rescore_file(o->task, o->predictions, o->show);
    const auto& a = r.aggregate;
    const std::string name = r.dataset.empty() ? r.family : r.family + ":" + r.dataset;
    std::printf("%s: %.2f %s over %lld samples\n", name.c_str(), a.value("score", 0.0),
                a.value("metric", std::string("score")).c_str(), static_cast<long long>(a.value("n", int64_t{0})));
    const nlohmann::json extra = a.value("extra", nlohmann::json::object());
    for (const auto& [k, v] : extra.items())
      if (v.is_number()) std::printf("  %s: %.2f\n", k.c_str(), v.get<double>());
    for (const auto& f : r.failures)
      std::printf("  wrong (line %lld): %s  [gold %s]\n", static_cast<long long>(f["line"].get<int64_t>()),
                  f["prediction"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str(),
                  f["gold"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    write_json(o->json_path,
               {{"task", name}, {"predictions", o->predictions}, {"result", a}, {"failures", r.failures}});
  });
}

}  // namespace cvq
