#include "tasks/task_registry.h"

#include "core/error.h"
#include "tasks/aggregate.h"
#include "tasks/fidelity.h"
#include "tasks/gsm8k.h"
#include "tasks/kv_footprint.h"
#include "tasks/longbench.h"
#include "tasks/niah.h"
#include "tasks/synthetic_retrieval.h"

namespace cvq {
namespace {

std::function<std::string(const nlohmann::json&)> fixed_metric(const char* name) {
  return [name](const nlohmann::json&) { return std::string(name); };
}

std::function<std::unique_ptr<EvalTask>(const TaskOptions&)> synthetic(SyntheticKind kind) {
  return [kind](const TaskOptions& o) {
    return std::make_unique<SyntheticRetrievalTask>(SyntheticOptions::parse(kind, o));
  };
}

std::vector<TaskFamily> make_families() {
  std::vector<TaskFamily> f;
  // Generation families (InfiniteBench-style retrieval, NIAH, LongBench, GSM8K).
  f.push_back(
      {"passkey", true, 2, false, synthetic(SyntheticKind::Passkey), score_passkey, fixed_metric("accuracy"), {}});
  f.push_back({"number_string",
               true,
               2,
               false,
               synthetic(SyntheticKind::NumberString),
               score_number_string,
               fixed_metric("accuracy"),
               {}});
  f.push_back({"kv_retrieval",
               true,
               2,
               false,
               synthetic(SyntheticKind::KvRetrieval),
               score_kv_retrieval,
               fixed_metric("accuracy"),
               {}});
  f.push_back({"niah",
               true,
               2,
               false,
               [](const TaskOptions& o) { return std::make_unique<NiahTask>(NiahOptions::parse(o)); },
               score_niah,
               fixed_metric("rouge1_f"),
               {}});
  f.push_back({"longbench",
               true,
               2,
               false,
               [](const TaskOptions& o) { return std::make_unique<LongBenchTask>(LongBenchOptions::parse(o)); },
               score_longbench,
               longbench_metric_of,
               {}});
  f.push_back({"gsm8k",
               true,
               2,
               false,
               [](const TaskOptions& o) { return std::make_unique<Gsm8kTask>(Gsm8kOptions::parse(o)); },
               score_gsm8k,
               fixed_metric("strict_match"),
               {}});
  // Measurement families.
  f.push_back({"perplexity",
               false,
               3,
               false,
               [](const TaskOptions& o) { return std::make_unique<WindowTask>(WindowOptions::parse(o, false), false); },
               {},
               {},
               aggregate_perplexity});
  f.push_back({"agreement",
               false,
               2,
               false,
               [](const TaskOptions& o) { return std::make_unique<WindowTask>(WindowOptions::parse(o, true), true); },
               {},
               {},
               aggregate_agreement});
  f.push_back({"memory",
               false,
               2,
               true,
               [](const TaskOptions& o) { return std::make_unique<KvFootprintTask>(FootprintOptions::parse(o)); },
               {},
               {},
               aggregate_memory});
  return f;
}

}  // namespace

const std::vector<TaskFamily>& task_families() {
  static const std::vector<TaskFamily> families = make_families();
  return families;
}

const TaskFamily* find_task_family(const std::string& name) {
  for (const TaskFamily& f : task_families())
    if (f.name == name) return &f;
  return nullptr;
}

const TaskFamily& task_family(const std::string& name) {
  if (const TaskFamily* f = find_task_family(name)) return *f;
  std::string known;
  for (const auto& n : task_family_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown task type '" + name + "' (known: " + known + ")");
}

std::vector<std::string> task_family_names(bool generating_only) {
  std::vector<std::string> out;
  for (const TaskFamily& f : task_families())
    if (!generating_only || f.generates) out.push_back(f.name);
  return out;
}

}  // namespace cvq
