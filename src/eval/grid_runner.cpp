#include "eval/grid_runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "commvq/kv_methods.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/progress.h"
#include "eval/results_store.h"
#include "eval/run_identity.h"
#include "kv/kv_cache.h"
#include "kv/kv_spec.h"
#include "model/llama_model.h"
#include "tasks/aggregate.h"
#include "tasks/kv_footprint.h"

namespace cvq {

namespace fs = std::filesystem;

const char* const kEvalHarnessVersion = "commvq-bench-eval/2";

std::pair<int, int> parse_shard(const std::string& s) {
  const size_t slash = s.find('/');
  auto bad = [&]() -> std::pair<int, int> { throw Error("--shard '" + s + "': expected i/n with 0 <= i < n"); };
  if (slash == std::string::npos || slash == 0 || slash + 1 >= s.size()) return bad();
  for (size_t k = 0; k < s.size(); ++k)
    if (k != slash && !(s[k] >= '0' && s[k] <= '9')) return bad();
  const int i = std::stoi(s.substr(0, slash)), n = std::stoi(s.substr(slash + 1));
  if (n < 1 || i < 0 || i >= n) return bad();
  return {i, n};
}

int64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

void reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (out) out << "5";
}

namespace {

struct MethodState {
  MethodConfig cfg;
  std::string status = "ok";  // ok | missing | unavailable
  std::string note;
};

MethodState probe_method(const MethodConfig& m, const KvGeometry& geo) {
  MethodState st{m, "ok", m.note};
  std::string method;
  try {
    method = KvSpec(m.kv).method();
  } catch (const std::exception& e) {
    return {m, "unavailable", e.what()};
  }
  const auto names = kv_method_names();
  if (std::find(names.begin(), names.end(), method) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    return {m, "missing", "KV method '" + method + "' is not registered in this build (registered: " + known + ")"};
  }
  try {
    (void)make_kv_cache(m.kv, geo);
  } catch (const std::exception& e) {
    return {m, "unavailable", e.what()};
  }
  return st;
}

nlohmann::json geometry_json(const KvGeometry& g) {
  return {{"n_layers", g.n_layers},
          {"n_head", g.n_head},
          {"n_head_kv", g.n_head_kv},
          {"head_dim", g.head_dim},
          {"kv_dim", g.kv_dim()}};
}

nlohmann::json model_identity(const nlohmann::json& entry) {
  return {{"file", fs::path(entry.value("path", std::string())).filename().string()},
          {"bytes", entry.value("bytes", int64_t{0})},
          {"sha256", entry.value("sha256", std::string())}};
}

void write_experiment_json(const std::string& out_dir, const ExperimentConfig& cfg,
                           const std::vector<MethodConfig>& methods) {
  const std::string path = out_dir + "/experiment.json";
  nlohmann::json j = {{"name", cfg.name},
                      {"description", cfg.description},
                      {"config_path", cfg.path},
                      {"config", cfg.raw},
                      {"harness", kEvalHarnessVersion}};
  nlohmann::json ms = nlohmann::json::array();
  std::set<std::string> seen;
  for (const auto& m : methods) {
    ms.push_back({{"label", m.label}, {"kv", m.kv}, {"note", m.note}});
    seen.insert(m.label);
  }
  if (fs::exists(path)) {
    const nlohmann::json old = read_json_file(path);
    if (old.value("name", "") != cfg.name) {
      throw Error(path + ": this folder holds results of experiment '" + old.value("name", "") + "', not '" + cfg.name +
                  "' (use another --out)");
    }
    for (const auto& m : old.value("methods", nlohmann::json::array()))  // keep methods of earlier calls (--kv)
      if (!seen.count(m.value("label", ""))) ms.push_back(m), seen.insert(m.value("label", ""));
  }
  j["methods"] = ms;
  nlohmann::json tasks = nlohmann::json::array();
  for (const auto& t : cfg.tasks)
    tasks.push_back({{"name", t.name}, {"group", t.group}, {"task", t.type}, {"sweep", t.sweep}, {"paper", t.paper}});
  j["tasks"] = tasks;
  write_file_atomic(path, j.dump(2) + "\n");
}

bool selected(const TaskInstanceConfig& t, const std::vector<std::string>& only) {
  if (only.empty()) return true;
  return std::find(only.begin(), only.end(), t.name) != only.end() ||
         std::find(only.begin(), only.end(), t.group) != only.end();
}

}  // namespace

nlohmann::json kv_footprint_from_records(const std::vector<nlohmann::json>& records, const nlohmann::json& geometry) {
  const nlohmann::json* longest = nullptr;
  for (const auto& r : records)
    if (r.contains("context_tokens") && r.contains("kv_bytes") &&
        (!longest || r["context_tokens"].get<int64_t>() > (*longest)["context_tokens"].get<int64_t>()))
      longest = &r;
  if (!longest || !geometry.is_object()) return nullptr;
  KvGeometry g;
  g.n_layers = geometry.value("n_layers", 0);
  g.n_head_kv = geometry.value("n_head_kv", 0);
  g.head_dim = geometry.value("head_dim", 0);
  const int64_t tokens = (*longest)["context_tokens"].get<int64_t>();
  const double measured = (*longest)["kv_bytes"].get<double>();
  nlohmann::json kv = {{"longest_context", tokens},
                       {"measured_bytes", measured},
                       {"measured_bits_per_element", bits_per_element(measured, tokens, g)}};
  if (longest->contains("kv_projected_bytes")) {
    const double projected = (*longest)["kv_projected_bytes"].get<double>();
    kv["projected_bytes"] = projected;
    kv["bits_per_element"] = bits_per_element(projected, tokens, g);
    kv["source"] = "projected";
  } else {
    kv["bits_per_element"] = kv["measured_bits_per_element"];
    kv["source"] = "measured";
  }
  return kv;
}

nlohmann::json summarize_run(const nlohmann::json& run_info, int64_t n_expected,
                             const std::vector<nlohmann::json>& records) {
  nlohmann::json s = {{"task", run_info.value("task", "")},
                      {"group", run_info.value("group", "")},
                      {"family", run_info.value("family", "")},
                      {"method", run_info.value("method", "")},
                      {"kv", run_info.value("kv", "")},
                      {"paper", run_info.value("paper", "")},
                      {"n_expected", n_expected}};
  const nlohmann::json agg = aggregate_records(run_info.value("family", ""), records);
  for (const auto& [k, v] : agg.items()) s[k] = v;
  s["status"] = static_cast<int64_t>(records.size()) >= n_expected ? "complete" : "partial";
  if (run_info.value("family", "") != "memory") {
    const nlohmann::json kv = kv_footprint_from_records(records, run_info.value("geometry", nlohmann::json()));
    if (!kv.is_null()) s["kv_footprint"] = kv;
  }
  double wall = 0.0, prefill_tokens = 0.0, prefill_s = 0.0, decode_tokens = 0.0, decode_s = 0.0;
  for (const auto& r : records) {
    const auto t = r.value("timing", nlohmann::json::object());
    wall += t.value("seconds", 0.0);
    prefill_s += t.value("prefill_seconds", 0.0);
    decode_s += t.value("decode_seconds", 0.0);
    prefill_tokens += r.value("prompt_tokens", 0.0);
    decode_tokens += std::max(0.0, r.value("generated_tokens", 0.0) - 1.0);
  }
  s["timing"] = {{"wall_seconds", wall}};
  if (prefill_s > 0) s["timing"]["prefill_tokens_per_s"] = prefill_tokens / prefill_s;
  if (decode_s > 0 && decode_tokens > 0) s["timing"]["decode_tokens_per_s"] = decode_tokens / decode_s;
  return s;
}

GridResult run_grid(const LlamaModel& model, const std::string& model_path, const ExperimentConfig& cfg,
                    const GridOptions& opt) {
  if (opt.out_dir.empty()) throw Error("eval --config: --out is required");
  if (opt.shard_count < 1 || opt.shard_index < 0 || opt.shard_index >= opt.shard_count) throw Error("bad --shard");
  const KvGeometry geo = model.kv_geometry();
  const nlohmann::json model_input = input_entry({"model", model_path});
  const nlohmann::json model_id = model_identity(model_input);
  const std::string suffix = shard_suffix(opt.shard_index, opt.shard_count);

  // Build every selected task first: bad options or missing data fail before any work is done.
  std::vector<const TaskInstanceConfig*> instances;
  std::vector<std::unique_ptr<EvalTask>> tasks;
  for (const auto& t : cfg.tasks) {
    if (!selected(t, opt.only_tasks)) continue;
    instances.push_back(&t);
    tasks.push_back(make_eval_task(t));
  }
  if (instances.empty()) {
    std::string known;
    for (const auto& t : cfg.tasks) known += (known.empty() ? "" : ", ") + t.name;
    throw Error(cfg.path + ": --tasks selects none of the tasks (" + known + ")");
  }
  // Every run's content identity, checked against the folder before anything is written.
  std::vector<std::vector<nlohmann::json>> identities(instances.size());
  std::string conflict;
  for (size_t ti = 0; ti < instances.size(); ++ti) {
    std::vector<nlohmann::json> task_inputs{model_input};
    for (const auto& f : tasks[ti]->input_files()) task_inputs.push_back(input_entry({"data", f}));
    for (const auto& m : cfg.methods) {
      std::vector<nlohmann::json> inputs = task_inputs;
      try {
        for (const auto& in : kv_spec_inputs(m.kv))
          if (fs::exists(in.path)) inputs.push_back(input_entry(in));  // a missing file makes the run n/a
      } catch (const Error&) {  // a malformed spec is reported by probe_method below
      }
      nlohmann::json task_id = tasks[ti]->identity();
      // The prefill arithmetic is part of what made the numbers (named only when not the default, so
      // fp32 results keep their identity).
      if (model.matmul_mode() != MatmulMode::Fp32) task_id["matmul"] = matmul_mode_name(model.matmul_mode());
      identities[ti].push_back(run_identity(kEvalHarnessVersion, task_id, m.kv, inputs));
      if (conflict.empty())
        conflict = resume_conflict(run_dir(opt.out_dir, instances[ti]->name, m.label), identities[ti].back());
    }
  }
  std::string out_dir = opt.out_dir;
  if (!conflict.empty()) {
    if (!opt.new_run) {
      throw Error(conflict + ". Rerun with --new-run to start a fresh run beside it (" + next_run_dir(opt.out_dir) +
                  "), or choose another --out");
    }
    out_dir = next_run_dir(opt.out_dir);
    std::fprintf(stderr, "note: %s\nnote: --new-run: this run goes to %s\n", conflict.c_str(), out_dir.c_str());
  }
  GridResult result;
  result.out_dir = out_dir;
  fs::create_directories(out_dir);
  write_experiment_json(out_dir, cfg, cfg.methods);

  std::vector<MethodState> methods;
  for (const auto& m : cfg.methods) {
    methods.push_back(probe_method(m, geo));
    if (methods.back().status != "ok") {
      std::fprintf(stderr, "note: method '%s' (%s) is %s: %s\n", m.label.c_str(), m.kv.c_str(),
                   methods.back().status.c_str(), methods.back().note.c_str());
    }
  }

  int64_t new_samples = 0;
  for (size_t ti = 0; ti < instances.size(); ++ti) {
    const TaskInstanceConfig& inst = *instances[ti];
    EvalTask& task = *tasks[ti];
    int64_t n_all = task.size();
    if (inst.limit >= 0) n_all = std::min(n_all, inst.limit);
    if (opt.limit >= 0) n_all = std::min(n_all, opt.limit);
    std::vector<int64_t> indices;
    for (int64_t i = 0; i < n_all; ++i)
      if (i % opt.shard_count == opt.shard_index) indices.push_back(i);
    const std::set<int64_t> mine(indices.begin(), indices.end());

    // Per method: its folder, what is already done, a cache.
    struct Active {
      size_t mi;
      std::string dir;
      nlohmann::json info;
      std::set<std::string> done;
      std::unique_ptr<KvCache> cache;
      std::unique_ptr<RecordWriter> writer;
      bool failed = false;
      std::string note;
      double seconds = 0.0;
    };
    std::vector<Active> runs;
    std::vector<nlohmann::json> summaries(methods.size());  // in method order, for result.runs
    for (size_t mi = 0; mi < methods.size(); ++mi) {
      const MethodState& m = methods[mi];
      const std::string dir = run_dir(out_dir, inst.name, m.cfg.label);
      fs::create_directories(dir);
      const nlohmann::json info = {{"task", inst.name},
                                   {"group", inst.group},
                                   {"family", task.family()},
                                   {"type", inst.type},
                                   {"method", m.cfg.label},
                                   {"kv", m.cfg.kv},
                                   {"paper", inst.paper},
                                   {"sweep", inst.sweep},
                                   {"geometry", geometry_json(geo)},
                                   {"identity", identities[ti][mi]},
                                   {"size", task.size()},
                                   {"sample_limit", n_all}};
      write_file_atomic(dir + "/run.json", info.dump(2) + "\n");
      if (m.status != "ok") {
        nlohmann::json s = {{"task", inst.name},
                            {"group", inst.group},
                            {"family", task.family()},
                            {"method", m.cfg.label},
                            {"kv", m.cfg.kv},
                            {"paper", inst.paper},
                            {"status", m.status},
                            {"note", m.note},
                            {"n", 0},
                            {"n_expected", static_cast<int64_t>(indices.size())},
                            {"sample_limit", n_all}};
        write_file_atomic(dir + "/summary" + suffix + ".json", s.dump(2) + "\n");
        summaries[mi] = s;
        ++result.n_missing;
        continue;
      }
      Active a;
      a.mi = mi;
      a.dir = dir;
      a.info = info;
      for (const auto& r : read_run_records(dir, true)) a.done.insert(r["id"].get<std::string>());
      runs.push_back(std::move(a));
    }

    // Sample-major: each sample runs once for every method that still lacks it, so generation tasks
    // prefill the prompt once for all of them and decode them as one batch (EvalTask::run_samples).
    std::vector<int64_t> todo;
    for (int64_t i : indices) {
      for (const Active& a : runs)
        if (!a.done.count(task.sample_id(i))) {
          todo.push_back(i);
          break;
        }
    }
    const auto t_task = std::chrono::steady_clock::now();
    reset_peak_rss();
    if (!todo.empty()) {
      auto fail = [&](Active& a, const std::string& what) {
        a.failed = true;
        a.note = what;
        std::fprintf(stderr, "error: %s [%s]: %s\n", inst.name.c_str(), methods[a.mi].cfg.label.c_str(), what.c_str());
      };
      for (Active& a : runs) {
        try {
          a.cache = make_kv_cache(methods[a.mi].cfg.kv, geo);
          a.writer = std::make_unique<RecordWriter>(a.dir + "/samples" + suffix + ".jsonl");
        } catch (const std::exception& e) {
          fail(a, e.what());
        }
      }
      std::string label = inst.name + " [";
      for (const Active& a : runs) label += (label.back() == '[' ? "" : ",") + methods[a.mi].cfg.label;
      Progress progress(label + "]", static_cast<int64_t>(todo.size()), "samples");
      int64_t n_done = 0;
      for (int64_t i : todo) {
        std::vector<Active*> group;
        std::vector<KvCache*> caches;
        for (Active& a : runs) {
          if (a.failed || a.done.count(task.sample_id(i))) continue;
          a.cache->clear();
          group.push_back(&a);
          caches.push_back(a.cache.get());
        }
        if (group.empty()) continue;
        const auto ts = std::chrono::steady_clock::now();
        std::vector<nlohmann::json> recs;
        try {
          recs = opt.shared_prefill ? task.run_samples(i, model, caches) : task.EvalTask::run_samples(i, model, caches);
        } catch (const std::exception&) {
          // Find which method fails: each alone, on its own prefill.
          recs.clear();
          std::vector<Active*> ok;
          for (Active* a : group) {
            try {
              a->cache->clear();
              recs.push_back(task.run_sample(i, model, *a->cache));
              recs.back()["prefill"] = "own";
              ok.push_back(a);
            } catch (const std::exception& e) {
              fail(*a, e.what());
            }
          }
          group = ok;
        }
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
        for (size_t g = 0; g < group.size(); ++g) {
          Active& a = *group[g];
          nlohmann::json& rec = recs[g];
          rec["id"] = task.sample_id(i);
          rec["index"] = i;
          if (rec.contains("context_tokens") && task.family() != "memory") {
            const int64_t projected = try_projected_bytes(*a.cache, rec["context_tokens"].get<int64_t>());
            if (projected >= 0) rec["kv_projected_bytes"] = projected;
          }
          if (!rec.contains("timing")) rec["timing"] = nlohmann::json::object();
          // The sample's wall time split evenly over the methods it ran for (they shared it).
          rec["timing"]["seconds"] = secs / static_cast<double>(group.size());
          if (group.size() > 1) rec["timing"]["methods_together"] = group.size();
          a.seconds += secs / static_cast<double>(group.size());
          a.writer->append(rec);
        }
        progress.update(++n_done);
        new_samples += static_cast<int64_t>(group.size());
        if (opt.stop_after_samples >= 0 && new_samples >= opt.stop_after_samples) {
          result.stopped = true;
          return result;  // as if killed here: no summaries
        }
      }
      progress.finish();
    }
    const double task_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_task).count();
    for (Active& a : runs) {
      const MethodState& m = methods[a.mi];
      const std::string summary_path = a.dir + "/summary" + suffix + ".json";
      // This shard's records (all files of the folder, so an unsharded rerun sees sharded work).
      std::vector<nlohmann::json> mine_records;
      for (auto& r : read_run_records(a.dir, false))
        if (mine.count(r.value("index", int64_t{-1}))) mine_records.push_back(std::move(r));
      nlohmann::json s = summarize_run(a.info, static_cast<int64_t>(indices.size()), mine_records);
      s["sample_limit"] = n_all;  // samples 0..n_all-1 are this grid's; `tables` ignores records beyond
      if (a.failed) {
        s["status"] = "error";
        s["note"] = a.note;
        ++result.n_errors;
      } else if (!m.note.empty()) {
        s["note"] = m.note;
      }
      if (opt.shard_count > 1) s["shard"] = std::to_string(opt.shard_index) + "/" + std::to_string(opt.shard_count);
      s["timing"]["session_seconds"] = a.seconds;
      s["timing"]["task_session_seconds"] = task_seconds;  // all methods of this task together
      s["timing"]["peak_rss_bytes"] = peak_rss_bytes();
      if (fs::exists(summary_path) && todo.empty()) {  // nothing ran now: keep the earlier session's numbers
        const nlohmann::json old = read_json_file(summary_path);
        const auto ot = old.value("timing", nlohmann::json::object());
        for (const char* k : {"session_seconds", "task_session_seconds", "peak_rss_bytes"})
          if (ot.contains(k)) s["timing"][k] = ot[k];
      }
      write_file_atomic(summary_path, s.dump(2) + "\n");
      summaries[a.mi] = s;
    }
    for (auto& s : summaries) result.runs.push_back(std::move(s));
  }
  nlohmann::json index = {
      {"experiment", cfg.name}, {"harness", kEvalHarnessVersion}, {"model", model_id}, {"runs", result.runs}};
  if (opt.shard_count > 1) index["shard"] = std::to_string(opt.shard_index) + "/" + std::to_string(opt.shard_count);
  write_file_atomic(out_dir + "/summary" + suffix + ".json", index.dump(2) + "\n");
  return result;
}

}  // namespace cvq
