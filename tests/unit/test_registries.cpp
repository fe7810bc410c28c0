// The registries a newcomer extends: KV methods (commvq/kv_methods.cpp) and task families
// (tasks/task_registry.cpp). Adding one is one new file plus one entry; this test lists what is
// registered and checks each entry is complete, so a half-registered family fails here.
#include <gtest/gtest.h>

#include <cmath>

#include "commvq/kv_methods.h"
#include "core/error.h"
#include "eval/experiment_config.h"
#include "kv/kv_cache.h"
#include "tasks/aggregate.h"
#include "tasks/task_registry.h"

namespace cvq {
namespace {

TEST(Registries, KvMethods) {
  EXPECT_EQ(kv_method_names(), (std::vector<std::string>{"bf16", "commvq", "fp16", "kivi", "kvquant", "q4_0", "q8_0"}));
}

TEST(Registries, TaskFamiliesAreCompleteAndLookedUpByName) {
  EXPECT_EQ(task_family_names(), (std::vector<std::string>{"passkey", "number_string", "kv_retrieval", "niah",
                                                           "longbench", "gsm8k", "perplexity", "agreement", "memory"}));
  EXPECT_EQ(task_family_names(true),
            (std::vector<std::string>{"passkey", "number_string", "kv_retrieval", "niah", "longbench", "gsm8k"}));
  EXPECT_EQ(eval_task_types(), task_family_names());
  for (const TaskFamily& f : task_families()) {
    SCOPED_TRACE(f.name);
    EXPECT_TRUE(static_cast<bool>(f.make));
    EXPECT_EQ(static_cast<bool>(f.score), f.generates);       // generation: a scorer ...
    EXPECT_EQ(static_cast<bool>(f.metric), f.generates);      // ... and a metric name
    EXPECT_EQ(static_cast<bool>(f.aggregate), !f.generates);  // measurement: its own aggregator
    EXPECT_EQ(&task_family(f.name), &f);
  }
  EXPECT_EQ(task_family("perplexity").decimals, 3);
  EXPECT_TRUE(task_family("memory").exact);
  try {
    task_family("paskey");
    FAIL() << "unknown family accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown task type 'paskey' (known: passkey, number_string"),
              std::string::npos);
  }
}

TEST(Registries, ScoringAndAggregationGoThroughTheRegistry) {
  EXPECT_EQ(score_sample("passkey", "The pass key is 71432.", "71432").score, 1.0);
  EXPECT_EQ(score_sample("gsm8k", "so #### 18", "... #### 18").score, 1.0);
  EXPECT_THROW(score_sample("perplexity", "x", "y"), Error);  // a measurement has no scorer
  const std::vector<nlohmann::json> recs = {{{"score", 1.0}, {"gold", "1"}}, {{"score", 0.0}, {"gold", "2"}}};
  const nlohmann::json a = aggregate_records("kv_retrieval", recs);
  EXPECT_EQ(a["metric"], "accuracy");
  EXPECT_DOUBLE_EQ(a["score"].get<double>(), 50.0);
  const nlohmann::json p = aggregate_records("perplexity", {{{"nll_sum", 2.0}, {"n_scored", 1}}});
  EXPECT_EQ(p["metric"], "perplexity");
  EXPECT_NEAR(p["score"].get<double>(), std::exp(2.0), 1e-12);
}

}  // namespace
}  // namespace cvq
