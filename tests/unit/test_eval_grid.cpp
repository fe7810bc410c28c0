// The experiment grid on a tiny random model: every task family runs end to end; a run killed midway
// (and a torn last JSONL line) resumes to the same final summary as an uninterrupted run; shards
// merge to the same numbers; missing KV methods are reported, not fatal; config mistakes give clear
// errors. Also the prompt builders (passkey sizing, NIAH insertion, middle truncation, GSM8K shots).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "commvq/commvq_codebook.h"
#include "commvq/kv_methods.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/file_hash_cache.h"
#include "core/json_file.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/text_source.h"
#include "eval/experiment_config.h"
#include "eval/grid_runner.h"
#include "eval/results_store.h"
#include "eval/run_identity.h"
#include "eval/tables.h"
#include "kv/kv_cache.h"
#include "model/llama_model.h"
#include "model/model_paths.h"
#include "support/test_env.h"
#include "support/tiny_model.h"
#include "tasks/fidelity.h"
#include "tasks/gsm8k.h"
#include "tasks/longbench.h"
#include "tasks/niah.h"
#include "tasks/perplexity.h"
#include "tasks/synthetic_retrieval.h"
#include "tasks/task.h"

namespace cvq {
namespace {

namespace fs = std::filesystem;

class EvalGrid : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Progress::set_quiet(true);
    root_ = fs::temp_directory_path() / ("cvq_eval_grid_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    ::setenv("COMMVQ_HASH_CACHE", (root_ / "file-hashes.json").c_str(), 1);  // not the user's cache
    test::TinyModelSpec spec;
    spec.n_ctx = 1024;
    spec.seed = 7;
    model_path_ = (root_ / "tiny.gguf").string();
    test::write_tiny_model(model_path_, spec);
    model_ = LlamaModel::load(model_path_).release();
    // Data files for every task family.
    std::string text;
    std::mt19937 rng(3);
    const char* words[] = {"alpha", "beta", "gamma", "delta", "stone", "river", "light", "house"};
    for (int i = 0; i < 1200; ++i) text += std::string(words[rng() % 8]) + ((i % 11 == 10) ? ". " : " ");
    write_file_atomic((root_ / "text.txt").string(), text);
    fs::create_directories(root_ / "lb" / "config");
    fs::create_directories(root_ / "lb" / "data");
    write_file_atomic(
        (root_ / "lb" / "config" / "dataset2prompt.json").string(),
        R"({"trec": "Classify.\n\n{context}\n{input}", "qasper": "Read.\n\n{context}\n\nQ: {input}\nA:"})");
    write_file_atomic((root_ / "lb" / "config" / "dataset2maxlen.json").string(), R"({"trec": 8, "qasper": 6})");
    std::string rows;
    for (int i = 0; i < 3; ++i) {
      nlohmann::json r = {{"input", "Question: what is " + std::to_string(i) + "?\nType:"},
                          {"context", std::string(1500 + 100 * i, 'a' + i)},  // forces middle truncation
                          {"answers", {"Number"}},
                          {"length", 100},
                          {"dataset", "trec"},
                          {"language", "en"},
                          {"all_classes", {"Number", "Date"}},
                          {"_id", "id" + std::to_string(i)}};
      rows += r.dump() + "\n";
    }
    write_file_atomic((root_ / "lb" / "data" / "trec.jsonl").string(), rows);
    std::string gsm;
    for (int i = 0; i < 6; ++i)
      gsm += nlohmann::json(
                 {{"question", "What is " + std::to_string(i) + " + 1?"},
                  {"answer", std::to_string(i) + " + 1 = <<" + std::to_string(i) + "+1=" + std::to_string(i + 1) +
                                 ">>" + std::to_string(i + 1) + "\n#### " + std::to_string(i + 1)}})
                 .dump() +
             "\n";
    write_file_atomic((root_ / "gsm_train.jsonl").string(), gsm);
    write_file_atomic((root_ / "gsm_test.jsonl").string(), gsm);
  }
  static void TearDownTestSuite() {
    delete model_;
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static nlohmann::json config_json() {
    const std::string r = root_.string();
    return nlohmann::json::parse(R"({
      "name": "grid-test",
      "seed": 5,
      "methods": [{"label": "fp16", "kv": "fp16"}, {"label": "nope", "kv": "nosuchmethod:bits=2"}],
      "tasks": [
        {"name": "passkey", "task": "passkey", "sweep": {"context_tokens": [400, 600]}, "depths": 3, "per_depth": 1},
        {"name": "kv", "task": "kv_retrieval", "context_tokens": 700, "depths": 2, "per_depth": 1, "max_new_tokens": 8},
        {"name": "niah", "task": "niah", "lengths": [300, 500], "depths": 2, "haystack": [")" +
                                 r + R"(/text.txt"],
         "max_new_tokens": 6},
        {"name": "lb", "task": "longbench", "dataset": "trec", "source": "official", "path": ")" +
                                 r + R"(/lb/data",
         "config_dir": ")" + r + R"(/lb/config", "max_prompt_tokens": 400},
        {"name": "gsm", "task": "gsm8k", "n_shot": 2, "max_new_tokens": 8, "limit": 4, "train": ")" +
                                 r + R"(/gsm_train.jsonl",
         "test": ")" + r + R"(/gsm_test.jsonl"},
        {"name": "ppl", "task": "perplexity", "data": ")" +
                                 r + R"(/text.txt", "ctx": 128, "chunk": 48, "windows": 3},
        {"name": "agree", "task": "agreement", "data": ")" +
                                 r + R"(/text.txt", "ctx": 96, "chunk": 40, "windows": 2},
        {"name": "memory", "task": "memory", "lengths": [64, 200, 4096], "measure_up_to": 200, "chunk": 50}
      ]})");
  }

  // Summaries without the fields that legitimately differ between sessions.
  static nlohmann::json comparable(nlohmann::json runs) {
    for (auto& r : runs) r.erase("timing");
    return runs;
  }
  static std::vector<nlohmann::json> records_without_timing(const std::string& dir) {
    auto recs = read_run_records(dir, false);
    for (auto& r : recs) r.erase("timing");
    return recs;
  }

  static fs::path root_;
  static std::string model_path_;
  static LlamaModel* model_;
};

fs::path EvalGrid::root_;
std::string EvalGrid::model_path_;
LlamaModel* EvalGrid::model_ = nullptr;

TEST_F(EvalGrid, ResumeAfterKillEqualsUninterruptedRun) {
  const ExperimentConfig cfg = ExperimentConfig::parse(config_json(), "grid-test.json");
  GridOptions a;
  a.out_dir = (root_ / "full").string();
  const GridResult full = run_grid(*model_, model_path_, cfg, a);
  EXPECT_FALSE(full.stopped);
  EXPECT_EQ(full.n_errors, 0);
  EXPECT_EQ(full.n_missing, static_cast<int>(cfg.tasks.size()));  // every task for the unknown method
  for (const auto& r : full.runs) {
    if (r["method"] == "nope") {
      EXPECT_EQ(r["status"], "missing");
      EXPECT_NE(r["note"].get<std::string>().find("not registered"), std::string::npos);
    } else {
      EXPECT_EQ(r["status"], "complete") << r.dump();
      EXPECT_EQ(r["n"], r["n_expected"]);
    }
    if (r["task"] == "gsm") {
      EXPECT_EQ(r["n_expected"], 4);  // the task's "limit" (6 rows)
    }
  }

  // Kill in the middle of the third run (passkey-400: 3 samples, passkey-600: 3, kv: 1 of 2), then
  // tear the last line as a kill during a write would, then resume.
  GridOptions b = a;
  b.out_dir = (root_ / "resumed").string();
  b.stop_after_samples = 7;
  const GridResult part = run_grid(*model_, model_path_, cfg, b);
  EXPECT_TRUE(part.stopped);
  const std::string kv_samples = run_dir(b.out_dir, "kv", "fp16") + "/samples.jsonl";
  ASSERT_TRUE(fs::exists(kv_samples));
  EXPECT_EQ(read_records_file(kv_samples, false).size(), 1u);
  EXPECT_FALSE(fs::exists(run_dir(b.out_dir, "kv", "fp16") + "/summary.json"));
  {
    std::ofstream torn(kv_samples, std::ios::app);
    torn << R"({"id": "depth100-0", "prediction": "12)";  // no newline, cut mid-record
  }
  EXPECT_EQ(read_records_file(kv_samples, false).size(), 1u);  // the torn line is not a record
  b.stop_after_samples = -1;
  const GridResult resumed = run_grid(*model_, model_path_, cfg, b);
  EXPECT_FALSE(resumed.stopped);
  EXPECT_EQ(read_records_file(kv_samples, false).size(), 2u);  // repaired, then the missing sample added
  EXPECT_EQ(comparable(resumed.runs), comparable(full.runs));
  for (const auto& t : cfg.tasks) {
    EXPECT_EQ(records_without_timing(run_dir(b.out_dir, t.name, "fp16")),
              records_without_timing(run_dir(a.out_dir, t.name, "fp16")))
        << t.name;
  }
  // A third call has nothing left to do and keeps the same summary.
  const GridResult again = run_grid(*model_, model_path_, cfg, b);
  EXPECT_EQ(comparable(again.runs), comparable(full.runs));

  // Shards: two slices into one folder merge (as `tables` does) to the unsharded numbers.
  GridOptions s0 = a, s1 = a;
  s0.out_dir = s1.out_dir = (root_ / "sharded").string();
  s0.shard_index = 0, s0.shard_count = 2;
  s1.shard_index = 1, s1.shard_count = 2;
  run_grid(*model_, model_path_, cfg, s0);
  run_grid(*model_, model_path_, cfg, s1);
  EXPECT_TRUE(fs::exists(s0.out_dir + "/summary.shard-0-of-2.json"));
  nlohmann::json merged = comparable(merge_results(s0.out_dir));
  nlohmann::json reference = comparable(merge_results(a.out_dir));
  EXPECT_EQ(merged, reference);

  // Tables from the results: Markdown and CSV, the missing method marked as such.
  TablesOptions to;
  to.results_dir = a.out_dir;
  to.out_dir = (root_ / "tables").string();
  to.plots = false;
  const TablesResult tr = make_tables(to);
  const std::string main_md = read_file(to.out_dir + "/main.md");
  EXPECT_NE(main_md.find("| nope | missing"), std::string::npos) << main_md;
  EXPECT_TRUE(fs::exists(to.out_dir + "/passkey.csv"));
  EXPECT_TRUE(fs::exists(to.out_dir + "/results.md"));
}

TEST_F(EvalGrid, RecordsHoldWhatRescoringNeeds) {
  const ExperimentConfig cfg = ExperimentConfig::parse(config_json(), "grid-test.json");
  GridOptions o;
  o.out_dir = (root_ / "records").string();
  o.only_tasks = {"lb", "memory", "ppl"};
  o.limit = 2;
  run_grid(*model_, model_path_, cfg, o);
  const auto lb = read_run_records(run_dir(o.out_dir, "lb", "fp16"), false);
  ASSERT_EQ(lb.size(), 2u);
  EXPECT_TRUE(lb[0]["truncated"].get<bool>());  // 1500-char context, 400-token limit
  EXPECT_LE(lb[0]["prompt_tokens"].get<int>(), 400);
  EXPECT_EQ(lb[0]["gold"]["dataset"], "trec");
  EXPECT_EQ(lb[0]["prompt_hash"].get<std::string>().size(), 16u);
  const auto mem = read_run_records(run_dir(o.out_dir, "memory", "fp16"), false);
  ASSERT_EQ(mem.size(), 2u);
  // fp16: 16 bits per element, measured and projected agree
  EXPECT_DOUBLE_EQ(mem[1]["measured_bits_per_element"].get<double>(), 16.0);
  EXPECT_DOUBLE_EQ(mem[1]["bits_per_element"].get<double>(), 16.0);
  const auto ppl = read_run_records(run_dir(o.out_dir, "ppl", "fp16"), false);
  ASSERT_EQ(ppl.size(), 2u);
  EXPECT_EQ(ppl[0]["n_scored"].get<int>(), 127);
  // Changing a task option and resuming into the same folder is refused, naming run.json.
  nlohmann::json j = config_json();
  j["tasks"][5]["chunk"] = 32;
  const ExperimentConfig changed = ExperimentConfig::parse(j, "grid-test.json");
  try {
    run_grid(*model_, model_path_, changed, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("run.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("chunk"), std::string::npos) << e.what();
  }
}

// Resuming is decided by content: the same files (even moved elsewhere) resume; a changed codebook or
// data file is refused with a message naming it, and --new-run starts beside the old folder.
TEST_F(EvalGrid, ResumeOnlyFromTheSameInputs) {
  const fs::path dir = root_ / "identity";
  fs::create_directories(dir);
  const std::string cb = (dir / "cb.safetensors").string(), text = (dir / "text.txt").string();
  random_commvq_codebook(model_->kv_geometry(), 2, true, 7).save(cb);
  fs::copy_file(root_ / "text.txt", text, fs::copy_options::overwrite_existing);
  auto config = [&](const std::string& text_path) {
    return ExperimentConfig::parse(nlohmann::json::parse(R"({"name": "identity", "methods": [
        {"label": "fp16", "kv": "fp16"}, {"label": "cvq", "kv": "commvq:bits=2,codebook=)" +
                                                         cb + R"("}],
        "tasks": [{"name": "ppl", "task": "perplexity", "data": ")" +
                                                         text_path + R"(", "ctx": 96, "chunk": 48, "windows": 2}]})"),
                                   "identity.json");
  };
  GridOptions o;
  o.out_dir = (dir / "out").string();
  const GridResult first = run_grid(*model_, model_path_, config(text), o);
  EXPECT_EQ(first.out_dir, o.out_dir);
  const std::string cvq_run = run_dir(o.out_dir, "ppl", "cvq");
  const nlohmann::json run_json = read_json_file(cvq_run + "/run.json");
  const nlohmann::json inputs = run_json["identity"]["inputs"];
  ASSERT_EQ(inputs.size(), 3u) << inputs.dump();  // model, data, codebook
  EXPECT_EQ(inputs[0]["role"], "model");
  EXPECT_EQ(inputs[0]["sha256"], sha256_file(model_path_));
  EXPECT_EQ(inputs[1]["role"], "data");
  EXPECT_EQ(inputs[1]["sha256"], sha256_file(text));
  EXPECT_EQ(inputs[2]["role"], "codebook");
  EXPECT_EQ(inputs[2]["sha256"], sha256_file(cb));
  EXPECT_EQ(run_json["identity"]["kv"], "commvq:bits=2,codebook=<file>");

  // The same content at another path resumes (nothing left to run, same numbers).
  fs::create_directories(dir / "elsewhere");
  const std::string moved = (dir / "elsewhere" / "text.txt").string();
  fs::copy_file(text, moved, fs::copy_options::overwrite_existing);
  const GridResult same = run_grid(*model_, model_path_, config(moved), o);
  EXPECT_EQ(comparable(same.runs), comparable(first.runs));
  const nlohmann::json run_json_now = read_json_file(cvq_run + "/run.json");

  // A retrained codebook: refused, naming the file and the run.
  random_commvq_codebook(model_->kv_geometry(), 2, true, 8).save(cb);
  try {
    run_grid(*model_, model_path_, config(text), o);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(cvq_run + "/run.json"), std::string::npos) << m;
    EXPECT_NE(m.find(cb + " (codebook) has changed"), std::string::npos) << m;
    EXPECT_NE(m.find("--new-run"), std::string::npos) << m;
  }
  // Nothing was written by the refused call.
  EXPECT_EQ(read_json_file(cvq_run + "/run.json"), run_json_now);

  // --new-run: a fresh folder beside it, holding every run.
  o.new_run = true;
  const GridResult fresh = run_grid(*model_, model_path_, config(text), o);
  EXPECT_EQ(fresh.out_dir, o.out_dir + "-2");
  EXPECT_EQ(read_run_records(run_dir(fresh.out_dir, "ppl", "fp16"), false).size(), 2u);
  EXPECT_EQ(read_run_records(run_dir(fresh.out_dir, "ppl", "cvq"), false).size(), 2u);
  EXPECT_EQ(read_json_file(run_dir(fresh.out_dir, "ppl", "cvq") + "/run.json")["identity"]["inputs"][2]["sha256"],
            sha256_file(cb));
  o.new_run = false;

  // Side by side with the first folder: fp16 read the same files and reproduces every sample; the
  // commvq run names the retrained codebook.
  TablesOptions to;
  to.results_dir = fresh.out_dir;
  to.out_dir = (dir / "tables").string();
  to.reference_dir = (dir / "out").string();
  to.plots = false;
  const TablesResult tr = make_tables(to);
  EXPECT_EQ(tr.reference_cells, 2);
  const std::string md = read_file(to.out_dir + "/reference.md");
  EXPECT_NE(md.find("| ppl | fp16 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| +0.000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| yes | 2/2 | same |"), std::string::npos) << md;
  EXPECT_NE(md.find(cb + " (codebook) has changed"), std::string::npos) << md;
  EXPECT_TRUE(fs::exists(to.out_dir + "/reference.csv"));

  // A data file rewritten to the same size (only the digest can tell) is named too.
  std::string t = read_file(text);
  t[0] = t[0] == 'x' ? 'y' : 'x';
  write_file_atomic(text, t);
  o.out_dir = fresh.out_dir;
  try {
    run_grid(*model_, model_path_, config(text), o);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(text + " (data) has changed"), std::string::npos) << e.what();
  }
}

TEST(FileHashCache, DigestIsCachedAndFollowsTheFile) {
  const fs::path dir = fs::temp_directory_path() / ("cvq_hash_cache_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ::setenv("COMMVQ_HASH_CACHE", (dir / "cache.json").c_str(), 1);
  const std::string f = (dir / "f.bin").string();
  write_file_atomic(f, "first version");
  EXPECT_EQ(sha256_file_cached(f), sha256_file(f));
  const nlohmann::json cache = nlohmann::json::parse(read_file((dir / "cache.json").string()));
  ASSERT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.begin().value()["sha256"], sha256_file(f));
  // The cached digest is what is returned for an unchanged file (planted here to prove it is used).
  nlohmann::json planted = cache;
  planted.begin().value()["sha256"] = "planted";
  write_file_atomic((dir / "cache.json").string(), planted.dump());
  EXPECT_EQ(sha256_file_cached(f), "planted");
  // Rewritten with the same size: a new version, hashed again.
  write_file_atomic(f, "other version");
  EXPECT_EQ(sha256_file_cached(f), sha256_file(f));
  EXPECT_NE(sha256_file(f), cache.begin().value()["sha256"].get<std::string>());
  // A corrupt cache file only costs a re-hash.
  write_file_atomic((dir / "cache.json").string(), "{not json");
  EXPECT_EQ(sha256_file_cached(f), sha256_file(f));
  ::unsetenv("COMMVQ_HASH_CACHE");
  fs::remove_all(dir);
}

TEST(RunIdentity, NamesWhatChanged) {
  const nlohmann::json task = {{"task", "passkey"}, {"context_tokens", 2048}};
  const std::vector<nlohmann::json> inputs = {{{"role", "model"}, {"path", "/m/a.gguf"}, {"sha256", "aaaa"}},
                                              {{"role", "codebook"}, {"path", "cb/x.safetensors"}, {"sha256", "bbbb"}}};
  const nlohmann::json id = run_identity("h/2", task, "commvq:bits=2,codebook=cb/x.safetensors", inputs);
  EXPECT_EQ(identity_change(id, id), "");
  nlohmann::json moved = id;  // same content elsewhere
  moved["inputs"][1]["path"] = "elsewhere/x.safetensors";
  EXPECT_EQ(identity_change(id, moved), "");
  nlohmann::json retrained = id;
  retrained["inputs"][1]["sha256"] = "cccc";
  EXPECT_EQ(identity_change(id, retrained), "cb/x.safetensors (codebook) has changed: sha256 bbbb then, cccc now");
  nlohmann::json other_model = id;
  other_model["inputs"][0]["sha256"] = "dddd";
  EXPECT_NE(identity_change(id, other_model).find("/m/a.gguf (model) has changed"), std::string::npos);
  nlohmann::json longer = id;
  longer["task"]["context_tokens"] = 4096;
  EXPECT_EQ(identity_change(id, longer), "task setting 'context_tokens' differs (2048 then, 4096 now)");
  nlohmann::json harness = id;
  harness["harness"] = "h/3";
  EXPECT_NE(identity_change(id, harness).find("harness differs (h/2 then, h/3 now)"), std::string::npos);
  EXPECT_NE(identity_change({{"harness", "h/1"}}, id).find("no input digests"), std::string::npos);
  EXPECT_EQ(kv_spec_without_paths("commvq:bits=2,codebook=a/b.safetensors,window=64"),
            "commvq:bits=2,codebook=<file>,window=64");
  EXPECT_EQ(kv_spec_inputs("kvquant:bits=4,calib=c.safetensors").at(0).path, "c.safetensors");
  EXPECT_TRUE(kv_spec_inputs("kivi:k=2,v=2").empty());
}

TEST_F(EvalGrid, PromptBuilders) {
  // Passkey: sized under the target, needle at the depth, key in the gold.
  SyntheticOptions so;
  so.context_tokens = 600;
  so.depths = 3;
  so.per_depth = 2;
  SyntheticRetrievalTask pk(so);
  ASSERT_EQ(pk.size(), 6);
  EXPECT_EQ(pk.sample_id(0), "depth000-0");
  EXPECT_EQ(pk.sample_id(4), "depth050-1");
  for (int64_t i = 0; i < pk.size(); ++i) {
    const TaskPrompt p = pk.prompt(i, *model_);
    EXPECT_LE(count_prompt_tokens(*model_, p), 600);
    EXPECT_NE(p.text.find("The pass key is " + p.gold.get<std::string>() + ". Remember it."), std::string::npos);
    EXPECT_EQ(p.text.substr(p.text.size() - 15), "The pass key is");
  }
  const std::string shallow = pk.prompt(0, *model_).text;  // depth 0: the needle precedes every filler line
  EXPECT_LT(shallow.find("The pass key is"), shallow.find(kInfiniteBenchFiller));
  const std::string deep = pk.prompt(2, *model_).text;  // depth 1: the needle follows every filler line
  EXPECT_GT(deep.find("The pass key is"), deep.rfind(kInfiniteBenchFiller));
  // Same key at another length (keys depend on seed and index only).
  so.context_tokens = 800;
  SyntheticRetrievalTask pk2(so);
  EXPECT_EQ(pk2.prompt(3, *model_).gold, pk.prompt(3, *model_).gold);

  // NIAH: the needle lands right after a sentence end.
  EXPECT_EQ(insert_at_sentence_boundary("One. Two three. Four", 12, " N."), "One. N. Two three. Four");
  EXPECT_EQ(insert_at_sentence_boundary("no boundary here", 8, "N "), "N no boundary here");
  EXPECT_EQ(insert_at_sentence_boundary("End.", 99, " N."), "End. N.");

  // Middle truncation keeps both ends.
  const std::string long_text = std::string(300, 'x') + "MIDDLE" + std::string(300, 'y');
  bool truncated = false;
  const std::string cut = middle_truncate_text(model_->tokenizer(), long_text, 100, &truncated);
  EXPECT_TRUE(truncated);
  EXPECT_EQ(cut, std::string(50, 'x') + std::string(50, 'y'));
  EXPECT_EQ(render_longbench_template("A {context} B {input} {other}", "c", "i"), "A c B i {other}");
  // ... and parsed back, so MiniLongBench rows rendered with another dataset's template (qasper rows
  // carry hotpotqa's) can be put in the official one; a final newline the template lacks is tolerated.
  std::string ctx, inp;
  const std::string hotpot = "Passages.\n{context}\n\nQuestion: {input}\nAnswer:";
  ASSERT_TRUE(parse_longbench_template(hotpot, "Passages.\nP1\n\nQuestion: x\n\nQuestion: why?\nAnswer:", &ctx, &inp));
  EXPECT_EQ(ctx, "P1\n\nQuestion: x");
  EXPECT_EQ(inp, "why?");
  EXPECT_EQ(render_longbench_template("Article: {context}\n\nQ: {input}\n\nA:", ctx, inp),
            "Article: P1\n\nQuestion: x\n\nQ: why?\n\nA:");
  ASSERT_TRUE(parse_longbench_template("News:\n{context}\n\nSummary:", "News:\nabc\n\nSummary:\n", &ctx, &inp));
  EXPECT_EQ(ctx, "abc");
  EXPECT_EQ(inp, "");
  EXPECT_FALSE(parse_longbench_template(hotpot, "Other.\nP1\n\nQuestion: why?\nAnswer:", &ctx, &inp));
  EXPECT_FALSE(parse_longbench_template(hotpot, "Passages.\nP1 and no question\nAnswer:", &ctx, &inp));

  // GSM8K: shots drawn like random.Random(seed).sample(range(n_train), k), one draw per test row in order.
  Gsm8kOptions go;
  go.train_path = (root_ / "gsm_train.jsonl").string();
  go.test_path = (root_ / "gsm_test.jsonl").string();
  go.n_shot = 2;
  go.seed = 1234;
  Gsm8kTask g(go);
  // python3 -c "import random; r=random.Random(1234); print([r.sample(range(6),2) for _ in range(2)])"
  EXPECT_EQ(g.shots_for(0), (std::vector<int64_t>{3, 0}));
  EXPECT_EQ(g.shots_for(1), (std::vector<int64_t>{0, 5}));
  const std::string text = g.prompt_text(0);
  EXPECT_EQ(text.rfind("Question: What is 0 + 1?\nAnswer:"), text.size() - 32);
  // lm-eval gsm8k v3: the shot's answer as written, calculator annotation included.
  EXPECT_NE(text.find("Question: What is 3 + 1?\nAnswer: 3 + 1 = <<3+1=4>>4\n#### 4\n\n"), std::string::npos) << text;
  const TaskPrompt gp = g.prompt(0, *model_);
  EXPECT_EQ(gp.stop, (std::vector<std::string>{"Question:", "</s>", "<|im_end|>"}));
}

TEST_F(EvalGrid, PerplexityTaskEqualsEvalTaskPerplexity) {
  // The grid's perplexity windows give the numbers `eval --task perplexity` (run_perplexity) gives.
  WindowOptions wo;
  wo.data = (root_ / "text.txt").string();
  wo.ctx = 128;
  wo.chunk = 48;
  wo.windows = 3;
  WindowTask task(wo, false);
  auto cache = make_kv_cache("kivi:k=2,v=2,group=16,window=32", model_->kv_geometry());
  double nll = 0.0;
  int64_t n = 0;
  for (int64_t w = 0; w < 3; ++w) {
    cache->clear();
    const auto rec = task.run_sample(w, *model_, *cache);
    nll += rec["nll_sum"].get<double>();
    n += rec["n_scored"].get<int64_t>();
  }
  const Tokenizer& tok = model_->tokenizer();
  const auto tokens = tok.encode(read_text_file(wo.data), tok.add_bos_default(), false);
  PerplexityOptions po;
  po.ctx = 128;
  po.chunk = 48;
  po.max_tokens = 3 * 128;
  po.kv_spec = "kivi:k=2,v=2,group=16,window=32";
  const PerplexityResult ref = run_perplexity(*model_, tokens, po);
  EXPECT_EQ(n, ref.n_scored);
  EXPECT_DOUBLE_EQ(nll, ref.nll_sum);
}

TEST(EvalConfig, ClearErrors) {
  auto err = [](const std::string& text) {
    try {
      (void)ExperimentConfig::parse(nlohmann::json::parse(text), "x.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::string ok_methods = R"("methods": ["fp16"])";
  EXPECT_NE(err(R"({"name": "a", )" + ok_methods + R"(, "tasks": [{"name": "p", "task": "passkey"}], "extra": 1})")
                .find("x.json: unknown key 'extra'"),
            std::string::npos);
  EXPECT_NE(
      err(R"({"name": "a", "methods": ["fp16", {"label": "fp16", "kv": "bf16"}], "tasks": [{"name": "p", "task": "passkey"}]})")
          .find("duplicate method label 'fp16'"),
      std::string::npos);
  EXPECT_NE(err(R"({"name": "a", )" + ok_methods + R"(, "tasks": [{"name": "p", "task": "paskey"}]})")
                .find("task 'p': unknown task 'paskey'"),
            std::string::npos);
  EXPECT_NE(err(R"({"name": "a", )" + ok_methods +
                R"(, "tasks": [{"name": "p", "task": "passkey"}, {"name": "p", "task": "passkey"}]})")
                .find("duplicate task name"),
            std::string::npos);
  EXPECT_NE(
      err(R"({"name": "a", )" + ok_methods +
          R"(, "tasks": [{"name": "p", "task": "passkey", "context_tokens": 1, "sweep": {"context_tokens": [2]}}]})")
          .find("both set and swept"),
      std::string::npos);
  EXPECT_NE(err(R"({"name": "a", )" + ok_methods + R"(, "tasks": []})").find("'tasks' must be a non-empty list"),
            std::string::npos);
  EXPECT_NE(err(R"({"methods": ["fp16"], "tasks": [{"name": "p", "task": "passkey"}]})").find("'name' is required"),
            std::string::npos);
  EXPECT_NE(
      err(R"({"name": "a", "methods": ["commvq:codebook=${NO_SUCH_VAR_X}"], "tasks": [{"name": "p", "task": "passkey"}]})")
          .find("'${NO_SUCH_VAR_X}' is not set"),
      std::string::npos);
  // Variables from "vars".
  const ExperimentConfig c = ExperimentConfig::parse(
      nlohmann::json::parse(
          R"({"name": "a", "vars": {"CB": "dir"}, "methods": [{"label": "c", "kv": "commvq:codebook=${CB}/x"}],
                               "tasks": [{"name": "p", "task": "passkey", "sweep": {"context_tokens": [2048, 4096]}}]})"),
      "x.json");
  EXPECT_EQ(c.methods[0].kv, "commvq:codebook=dir/x");
  ASSERT_EQ(c.tasks.size(), 2u);
  EXPECT_EQ(c.tasks[1].name, "p-4096");
  EXPECT_EQ(c.tasks[1].options["context_tokens"], 4096);
  EXPECT_EQ(c.tasks[1].limit, -1);
  EXPECT_NE(err(R"({"name": "a", )" + ok_methods + R"(, "tasks": [{"name": "p", "task": "passkey", "limit": -1}]})")
                .find("'limit' must be a non-negative integer"),
            std::string::npos);

  // Task options are checked when the task is built: a typo names the file, the task and the key.
  TaskInstanceConfig t;
  t.name = "p";
  t.type = "passkey";
  t.where = "x.json: task 'p'";
  t.options = {{"dephts", 3}};
  try {
    (void)make_eval_task(t);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.json: task 'p': unknown option 'dephts'"), std::string::npos) << e.what();
  }
  t.options = {{"depths", "three"}};
  EXPECT_THROW((void)make_eval_task(t), Error);
  t.type = "longbench";
  t.options = {{"dataset", "qasper"}, {"source", "official"}, {"path", "/no/such/dir"}};
  try {
    (void)make_eval_task(t);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("qasper.jsonl"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_shard("2/2"), Error);
  EXPECT_THROW(parse_shard("a/2"), Error);
  EXPECT_EQ(parse_shard("1/3"), std::make_pair(1, 3));
  EXPECT_THROW(ExperimentConfig::load("/no/such/config.json"), Error);
}

TEST(EvalConfig, ShippedExperimentsParseAndBuild) {
  // Every experiments/*.json parses; its tasks build (data read, options checked) when the data is here.
  CVQ_NEED_FILE(data, test::data_file("longbench/minilongbench_en.jsonl"));
  int n = 0;
  for (const auto& e : fs::directory_iterator(test::test_source_dir() + "/experiments")) {
    if (e.path().extension() != ".json" || e.path().filename() == "paper.json") continue;
    SCOPED_TRACE(e.path().string());
    const ExperimentConfig c = ExperimentConfig::load(e.path().string());
    EXPECT_FALSE(c.methods.empty());
    for (const auto& t : c.tasks) EXPECT_NO_THROW((void)make_eval_task(t)) << t.name;
    ++n;
  }
  EXPECT_GE(n, 7);
  // paper.json: every entry has values keyed by method label.
  const nlohmann::json paper = read_json_file(test::test_source_dir() + "/experiments/paper.json");
  for (const auto& [k, v] : paper["entries"].items()) EXPECT_TRUE(v["values"].is_object()) << k;
}

}  // namespace
}  // namespace cvq
