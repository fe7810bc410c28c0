// `train`: CommVQ codebooks from `collect` activations — per layer, the RoPE-commutative key
// codebooks by EM (one per KV head) and the value codec by gradient descent. Resumable per layer:
// finished layers are kept in <out>.parts/ and skipped on a rerun with the same settings.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/commands/common.h"
#include "collect/collect.h"
#include "commvq/commvq_codebook.h"
#include "commvq/key_em.h"
#include "commvq/value_trainer.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

namespace cvq {
namespace {

// Key error against the keys' variation around their mean: ||k̂ - k||² / ||k - mean(k)||² over up to
// 4,096 evenly spaced tokens. A key bias shared by every token (Qwen's K bias) shifts every score of a
// query by the same amount, which softmax ignores, yet dominates ||k||; key_rel_mse (relative to
// ||k||²) then looks small while the part attention sees is coded much less accurately.
double centered_key_error(const KeyLayerCodebook& cb, const float* k, int64_t n) {
  const int D = cb.kv_dim();
  const int64_t m = std::min<int64_t>(n, 4096), step = std::max<int64_t>(1, n / m);
  std::vector<float> sample(static_cast<size_t>(m) * D), decoded(sample.size()), norms(m);
  for (int64_t i = 0; i < m; ++i) std::copy_n(k + (i * step) * D, D, sample.data() + i * D);
  std::vector<uint16_t> codes(static_cast<size_t>(m) * cb.n_kv * cb.stages());
  cb.encode(sample.data(), m, norms.data(), codes.data());
  cb.decode(codes.data(), norms.data(), m, decoded.data());
  std::vector<double> mean(D, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int c = 0; c < D; ++c) mean[c] += sample[i * D + c];
  for (double& v : mean) v /= static_cast<double>(m);
  double err = 0, var = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int c = 0; c < D; ++c) {
      const double x = sample[i * D + c], e = decoded[i * D + c] - x, dev = x - mean[c];
      err += e * e;
      var += dev * dev;
    }
  }
  return var > 0 ? err / var : 0.0;
}

struct TrainOpts : CommonOptions {
  std::string activations;
  std::string out;
  int bits = 2;
  int stages = 0;
  int64_t key_tokens = 16384;
  int key_iters = 24;
  int value_steps = 1500;
  int value_batch = 64;
  int value_refit_rounds = 4;
  int value_refine_sweeps = 4;
  bool value_refit_unweighted = false;
  int64_t value_refit_tokens = 16384;
  bool unstructured = false;
  bool no_attention_loss = false;
  bool key_center = false;
  uint64_t seed = 1;
  std::vector<int> only_layers;  // non-empty: train just these (a comparison run; no codebook file)
};

// What the activations are, by content (collect's identity: model and source hashes, tokens, ctx,
// dtype), not where they happen to be: the codebook file stays the same for the same inputs.
nlohmann::json collection_identity(const std::string& dir) {
  const std::string manifest = (std::filesystem::path(dir) / "manifest.json").string();
  if (!std::filesystem::exists(manifest))
    fail_file(manifest, "not found: run `collect` into this folder first (or let it finish)");
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(read_file(manifest));
  } catch (const nlohmann::json::exception& e) {
    fail_file(manifest, std::string("malformed manifest: ") + e.what());
  }
  if (!m.contains("identity")) fail_file(manifest, "has no 'identity' (made by an older collect? collect again)");
  return m["identity"];
}

nlohmann::json settings_json(const TrainOpts& o, int stages) {
  nlohmann::json s = {{"bits", o.bits},
                      {"stages", stages},
                      {"key_tokens", o.key_tokens},
                      {"key_iterations", o.key_iters},
                      {"value_steps", o.value_steps},
                      {"value_batch", o.value_batch},
                      {"value_refit_rounds", o.value_refit_rounds},
                      {"value_refine_sweeps", o.value_refine_sweeps},
                      {"value_refit_attention_weights", !o.value_refit_unweighted},
                      {"value_refit_tokens", o.value_refit_tokens},
                      {"structured", !o.unstructured},
                      {"attention_loss", !o.no_attention_loss},
                      {"seed", o.seed},
                      {"activations", collection_identity(o.activations)}};
  if (o.key_center) s["key_center"] = true;  // absent when off: older codebooks keep their settings
  return s;
}

struct LayerKeys {
  KeyLayerCodebook codebook;
  KeyEmLayerReport report;
  double rel_mse = 0.0;           // mean over heads of the last stage's loss / the keys' initial MSE
  double rel_mse_centered = 0.0;  // error over the keys' variance (centered_key_error)
};

// Key EM of layer l on its collected pre-RoPE keys (centered first with --key-center).
LayerKeys train_layer_keys(const TrainOpts& o, const LlamaConfig& c, const ValueLayerData& data, int l, int stages) {
  LayerKeys r;
  KeyEmOptions ko;
  ko.iterations = o.key_iters;
  ko.max_tokens = o.key_tokens;
  ko.seed = o.seed + static_cast<uint64_t>(l);
  ko.unstructured = o.unstructured;
  std::vector<float> key_mean;
  std::vector<float> centered_keys;
  const float* em_keys = data.keys_pre_rope.data();
  if (o.key_center) {
    const int D = c.n_head_kv * c.head_dim;
    key_mean = key_channel_mean(em_keys, data.n_tokens, D);
    centered_keys.resize(static_cast<size_t>(data.n_tokens) * D);
    subtract_key_mean(em_keys, data.n_tokens, key_mean, centered_keys.data());
    em_keys = centered_keys.data();
  }
  r.codebook = train_key_layer(em_keys, data.n_tokens, c.n_head_kv, c.head_dim, stages, c.rope_layout, ko, &r.report);
  r.codebook.mean = std::move(key_mean);
  for (const auto& h : r.report.heads)
    r.rel_mse += h.stages.empty() || h.initial_mse <= 0 ? 0 : h.stages.back().best_loss / h.initial_mse;
  r.rel_mse /= std::max<size_t>(1, r.report.heads.size());
  r.rel_mse_centered = centered_key_error(r.codebook, data.keys_pre_rope.data(), data.n_tokens);
  return r;
}

// The value codec's training options of layer l.
ValueTrainOptions value_options(const TrainOpts& o, int l) {
  ValueTrainOptions vo;
  vo.bits = o.bits;
  vo.steps = o.value_steps;
  vo.batch = o.value_batch;
  vo.seed = o.seed + 1000 + static_cast<uint64_t>(l);
  vo.attention_loss = !o.no_attention_loss;
  vo.refit_rounds = o.value_refit_rounds;
  vo.refine_sweeps = o.value_refine_sweeps;
  vo.refit_attention_weights = !o.value_refit_unweighted;
  vo.refit_tokens = o.value_refit_tokens;
  return vo;
}

// What a layer's part file and the codebook keep of its training: what the inputs determine
// (errors, token counts); times go to --json only, so the same inputs and seed give the same bytes.
nlohmann::json layer_report(int l, int64_t tokens, const LayerKeys& keys, const ValueTrainReport& vr) {
  return {{"layer", l},
          {"tokens", tokens},
          {"key_tokens", keys.report.tokens},
          {"key_rel_mse", keys.rel_mse},
          {"key_rel_mse_centered", keys.rel_mse_centered},
          {"value_rel_mse", vr.trained.rel_mse_values},
          {"attn_rel_mse", vr.trained.rel_mse_attn},
          {"value_rel_mse_untrained", vr.untrained.rel_mse_values},
          {"value_rel_mse_gradient_only", vr.gradient_only.rel_mse_values},
          {"attn_rel_mse_gradient_only", vr.gradient_only.rel_mse_attn}};
}

void run_train(const TrainOpts& o) {
  apply_common_options(o);
  auto model = LlamaModel::load(resolve_model_path(o.model_path));
  const LlamaConfig& c = model->config();
  const KvGeometry geo = model->kv_geometry();
  const int stages = o.stages > 0 ? o.stages : commvq_key_stages(o.bits, c.head_dim);
  const nlohmann::json settings = settings_json(o, stages);
  const std::string parts = o.out + ".parts";
  std::filesystem::create_directories(parts);

  CommvqCodebook cb;
  cb.model = CommvqModelIdentity::of(geo);
  cb.key_bits = o.bits;
  cb.value_bits = o.bits;
  cb.stages = stages;
  cb.structured = !o.unstructured;
  cb.training = settings;
  cb.layers = nlohmann::json::array();
  cb.keys.resize(c.n_layers);
  cb.values.resize(c.n_layers);

  for (int l : o.only_layers)
    if (l < 0 || l >= c.n_layers)
      throw Error("--layers: layer " + std::to_string(l) + " does not exist (the model has " +
                  std::to_string(c.n_layers) + ")");
  auto wanted = [&](int l) {
    return o.only_layers.empty() || std::find(o.only_layers.begin(), o.only_layers.end(), l) != o.only_layers.end();
  };
  const int n_wanted = o.only_layers.empty() ? c.n_layers : static_cast<int>(o.only_layers.size());
  std::printf("%-6s %10s %12s %14s %12s %12s %14s %9s\n", "layer", "tokens", "key relMSE", "key (centered)",
              "value relMSE", "attn relMSE", "value(no refit)", "seconds");
  Progress progress("train", n_wanted, "layers");
  nlohmann::json json_layers = nlohmann::json::array();  // the file's reports plus times (--json)
  int done = 0;
  for (int l = 0; l < c.n_layers; ++l) {
    if (!wanted(l)) continue;
    char name[64];
    std::snprintf(name, sizeof name, "/layer_%02d.safetensors", l);
    const std::string part = parts + name;
    nlohmann::json info;
    if (load_commvq_layer(part, l, c.n_head_kv, c.head_dim, c.rope_layout, &cb.keys[l], &cb.values[l], &info) &&
        info.value("settings", nlohmann::json()) == settings) {
      cb.layers.push_back(info.at("report"));
      nlohmann::json resumed = info.at("report");
      resumed["resumed"] = true;
      json_layers.push_back(resumed);
      progress.update(++done, "(layer " + std::to_string(l) + " resumed)");
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    ValueLayerData data =
        load_value_layer_data(collect_layer_file(o.activations, l), c.n_head, c.n_head_kv, c.head_dim);

    LayerKeys lk = train_layer_keys(o, c, data, l, stages);
    cb.keys[l] = std::move(lk.codebook);

    const ValueTrainOptions vo = value_options(o, l);
    const std::vector<float> w_o = model->dense_attn_output(l);
    ValueAttnProj attn{w_o.data(), c.n_embd, c.n_head, c.n_head_kv, c.head_dim};
    ValueTrainReport vr;
    cb.values[l] = train_value_codec(data, geo.rope, &attn, vo, &vr);

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const nlohmann::json report = layer_report(l, data.n_tokens, lk, vr);
    save_commvq_layer(part, l, cb.keys[l], cb.values[l], {{"settings", settings}, {"report", report}});
    cb.layers.push_back(report);
    nlohmann::json timed = report;
    timed["value_refit_seconds"] = vr.refit_seconds;
    timed["key_seconds"] = lk.report.seconds;
    timed["value_seconds"] = vr.train_seconds;
    timed["seconds"] = secs;
    json_layers.push_back(timed);
    progress.update(++done);
    std::printf("%-6d %10lld %12.4f %14.4f %12.4f %12.4f %14.4f %9.1f\n", l, static_cast<long long>(data.n_tokens),
                lk.rel_mse, lk.rel_mse_centered, vr.trained.rel_mse_values, vr.trained.rel_mse_attn,
                vr.gradient_only.rel_mse_values, secs);
    std::fflush(stdout);
  }
  progress.finish();
  if (!o.only_layers.empty()) {
    std::printf("trained %d of %d layers (kept in %s); no codebook file is written with --layers\n", n_wanted,
                c.n_layers, parts.c_str());
    write_json(
        o.json_path,
        {{"settings", settings}, {"activations_dir", o.activations}, {"layers", json_layers}, {"partial", true}});
    return;
  }
  cb.save(o.out);
  std::filesystem::remove_all(parts);
  std::printf("wrote %s (%d-bit, %d key stages, %s of codebooks)\n", o.out.c_str(), o.bits, stages,
              format_bytes(double(cb.param_bytes())).c_str());
  write_json(o.json_path, {{"codebook", o.out},
                           {"codebook_sha256", sha256_file(o.out)},
                           {"settings", settings},
                           {"activations_dir", o.activations},
                           {"layers", json_layers}});
}

}  // namespace

void register_train(CLI::App& app) {
  auto o = std::make_shared<TrainOpts>();
  auto* cmd =
      app.add_subcommand("train", "train CommVQ key codebooks (EM) and value codecs from collected activations");
  add_common_options(*cmd, *o);
  cmd->add_option("--activations", o->activations, "folder written by `collect`")->required();
  cmd->add_option("--out", o->out, "codebook file to write (.safetensors)")->required();
  cmd->add_option("--bits", o->bits, "bits per element: 1 or 2")->check(CLI::IsMember({1, 2}));
  cmd->add_option("--stages", o->stages, "key residual stages R (default round(bits*d/12))")->check(CLI::Range(1, 64));
  cmd->add_option("--tokens", o->key_tokens, "tokens per layer for key EM")->check(CLI::Range(256, 1 << 24));
  cmd->add_option("--iters", o->key_iters, "EM iterations per key stage")->check(CLI::Range(1, 1000));
  cmd->add_option("--value-steps", o->value_steps, "optimizer steps per layer for the value codec")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--value-batch", o->value_batch, "tokens per value minibatch")->check(CLI::Range(1, 65536));
  cmd->add_option("--value-refit-rounds", o->value_refit_rounds,
                  "rounds of code refinement + least-squares codebook refit after the gradient steps (0: off)")
      ->check(CLI::Range(0, 100));
  cmd->add_flag("--value-refit-unweighted", o->value_refit_unweighted,
                "ablation: the codebook refit weights every token alike (default: by its share of the attention loss)");
  cmd->add_option("--value-refit-tokens", o->value_refit_tokens,
                  "tokens per layer for the codebook refit (evenly spaced, plus each sequence's first tokens; 0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option(
         "--value-refine-sweeps", o->value_refine_sweeps,
         "code refinement sweeps after the encoder's argmax at compression time (0: the paper's encoder alone)")
      ->check(CLI::Range(0, 100));
  cmd->add_option("--layers", o->only_layers,
                  "train only these layers (comparing settings on a few layers; writes the report, not a codebook)")
      ->delimiter(',');
  cmd->add_flag("--unstructured", o->unstructured,
                "ablation: plain VQ key codebooks of the same size (no RoPE commutativity)");
  cmd->add_flag("--key-center", o->key_center,
                "subtract each layer's per-channel mean key before quantizing (kept in the file; for models with a "
                "key bias such as Qwen2; beyond the paper)");
  cmd->add_flag("--no-attention-loss", o->no_attention_loss, "ablation: value codec trained on reconstruction only");
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->callback([o] { run_train(*o); });
}

}  // namespace cvq
