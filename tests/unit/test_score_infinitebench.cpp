// `score` on the published InfiniteBench GPT-4 predictions reproduces the published numbers:
// passkey 100.00, number_string 100.00, kv_retrieval 89.00 (OpenBMB/InfiniteBench results/gpt4).
#include <gtest/gtest.h>

#include "eval/rescore.h"
#include "support/test_env.h"

namespace cvq {
namespace {

void expect_score(const std::string& task, double expected, int64_t n) {
  CVQ_NEED_FILE(path, test::data_file("infinitebench/gpt4_preds/preds_" + task + ".jsonl"));
  const RescoreResult r = rescore_file(task, path);
  EXPECT_EQ(r.aggregate["score"].get<double>(), expected) << task;
  EXPECT_EQ(r.aggregate["n"].get<int64_t>(), n) << task;
}

TEST(ScoreInfiniteBenchGpt4, Passkey) { expect_score("passkey", 100.00, 590); }
TEST(ScoreInfiniteBenchGpt4, NumberString) { expect_score("number_string", 100.00, 590); }
TEST(ScoreInfiniteBenchGpt4, KvRetrieval) { expect_score("kv_retrieval", 89.00, 500); }

}  // namespace
}  // namespace cvq
