// `calibrate-kvquant`: KVQuant's offline calibration — per-channel key outlier thresholds and the nuq
// lookup tables per layer, from the model's own pre-RoPE keys and values on calibration text.
#include <chrono>
#include <cstdio>

#include "cli/commands/common.h"
#include "collect/collect.h"
#include "commvq/kv_methods.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/text_source.h"
#include "kv/kvquant_calib.h"
#include "model/llama_model.h"
#include "model/model_identity.h"
#include "model/model_paths.h"
#include "tasks/data_paths.h"

namespace cvq {

namespace {

// The model run over the sequences with an fp16 cache while the calibrator sees every layer's keys
// (pre-RoPE) and values; then the thresholds and lookup tables for each bit width.
KvQuantCalibration calibrate_kvquant(const LlamaModel& model, const std::vector<CollectSequence>& seqs, int64_t total,
                                     double outliers, const std::vector<int>& bits) {
  const KvGeometry geo = model.kv_geometry();
  KvQuantCalibrator cal(geo, outliers);
  const LayerObserver observer = [&cal](int layer, const float*, const float* k, const float* v, const int32_t*,
                                        int n) { cal.add(layer, k, v, n); };
  auto cache = make_kv_cache("fp16", geo);
  Progress prog("calibrate-kvquant", total, "tok");
  int64_t done = 0;
  for (const auto& s : seqs) {
    cache->clear();
    const int n = static_cast<int>(s.tokens.size());
    std::vector<int32_t> positions(n);
    for (int i = 0; i < n; ++i) positions[i] = i;
    model.forward(s.tokens.data(), positions.data(), n, *cache, LlamaModel::Logits::None, &observer);
    done += n;
    prog.update(done);
  }
  prog.finish();
  return cal.finish(bits, model.config().name);
}

void print_layer0_centroids(const KvQuantCalibration& c) {
  for (const auto& [b, t] : c.luts) {
    const int K = 1 << b;
    for (int which = 0; which < 2; ++which) {
      const std::vector<float>& cen = which == 0 ? t.key_centroids : t.value_centroids;
      std::printf("  layer 0 %s %d-bit centroids:", which == 0 ? "key  " : "value", b);
      for (int i = 0; i < K; ++i) std::printf(" %+.3f", cen[i]);
      std::printf("\n");
    }
  }
}

}  // namespace

void register_calibrate_kvquant(CLI::App& app) {
  struct Opts : CommonOptions {
    std::vector<std::string> text;
    int64_t tokens = 32768;
    int ctx = 2048;
    std::string out;
    std::vector<int> bits{2, 3, 4};
    double outliers = 0.01;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "calibrate-kvquant", "KVQuant calibration: per-channel key thresholds and nuq lookup tables (k-means) per layer");
  add_common_options(*cmd, *o);
  cmd->add_option("--text", o->text, "text file(s) (default: the Jane Austen novels in the data folder)");
  cmd->add_option("--tokens", o->tokens, "calibration tokens in total")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  cmd->add_option("--ctx", o->ctx, "max tokens per sequence (fresh KV cache per sequence)")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option(
      "--out", o->out,
      "output file (default: <model>.kvquant.safetensors next to the model, where kvquant looks without calib=)");
  cmd->add_option("--bits", o->bits, "bit widths to build lookup tables for (comma-separated)")
      ->delimiter(',')
      ->check(CLI::Range(2, 4));
  cmd->add_option("--outliers", o->outliers, "fraction of values kept exactly (0.01: 0.5% / 99.5% thresholds)")
      ->check(CLI::Range(0.0, 0.49));
  cmd->callback([o] {
    apply_common_options(*o);
    const auto t_start = std::chrono::steady_clock::now();
    std::vector<std::string> sources = o->text;
    if (sources.empty()) sources = calibration_text_paths();
    const std::string model_path = resolve_model_path(o->model_path);
    const std::string out = o->out.empty() ? kvquant_default_calib_path(model_path) : o->out;
    auto model = LlamaModel::load(model_path);
    std::vector<std::string> texts;
    for (const auto& s : sources) texts.push_back(read_text_file(s));
    const auto seqs = plan_collect_sequences(model->tokenizer(), texts, o->tokens, o->ctx);
    int64_t total = 0;
    for (const auto& s : seqs) total += static_cast<int64_t>(s.tokens.size());
    if (total < o->tokens && !Progress::quiet()) {
      std::fprintf(stderr, "calibrate-kvquant: the text gives only %lld tokens (asked for %lld)\n",
                   static_cast<long long>(total), static_cast<long long>(o->tokens));
    }

    KvQuantCalibration c = calibrate_kvquant(*model, seqs, total, o->outliers, o->bits);
    c.info["model_path"] = model_path;
    c.info["model_sha256"] = model_sha256(model_path);
    c.info["sources"] = sources;
    c.info["ctx"] = o->ctx;
    c.info["n_sequences"] = seqs.size();
    c.save(out);

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    std::printf("KVQuant calibration of %s on %lld tokens (%zu sequences), outliers=%g -> %s (%.1fs)\n",
                c.model.describe().c_str(), static_cast<long long>(c.n_tokens), seqs.size(), c.outliers, out.c_str(),
                secs);
    print_layer0_centroids(c);
    nlohmann::json luts = nlohmann::json::object();
    for (const auto& [b, t] : c.luts)
      luts[std::to_string(b)] = {{"key_centroids", t.key_centroids}, {"value_centroids", t.value_centroids}};
    write_json(o->json_path, {{"out", out},
                              {"model", model_path},
                              {"n_tokens", c.n_tokens},
                              {"n_sequences", seqs.size()},
                              {"outliers", c.outliers},
                              {"bits", o->bits},
                              {"seconds", secs},
                              {"luts", luts}});
  });
}

}  // namespace cvq
