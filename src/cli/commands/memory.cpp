// `memory`: exact KV-cache bytes of each method at a context length, computed analytically from the
// method's storage layout (projected_bytes(), tested to equal what a filled cache holds), for a
// GGUF model (plus its weights) or a named architecture preset (shapes only, no weights).
#include <cstdio>

#include "cli/commands/common.h"
#include "commvq/kv_methods.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "kv/windowed_cache.h"
#include "model/llama_config.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

namespace cvq {

namespace {

// One method's row of the table: bytes per token and per element at N tokens, the fp16 window's
// share, the fixed cost (codebooks, value encoders) and its share at 32K / 128K tokens.
nlohmann::json print_memory_row(const KvGeometry& geo, const std::string& spec, int64_t N, size_t weights) {
  const double elements = 2.0 * static_cast<double>(N) * geo.kv_dim() * geo.n_layers;  // K and V
  auto cache = make_kv_cache(spec, geo);
  const size_t total = cache->projected_bytes(N);
  const auto* wc = dynamic_cast<const WindowedCache*>(cache.get());
  const size_t window = wc ? wc->projected_window_bytes(N) : 0;
  const double per_token = double(total) / double(N);
  const double bits = double(total) * 8.0 / elements;
  char share[64];
  std::snprintf(share, sizeof share, "%s (%.1f%%)", format_bytes(double(window)).c_str(),
                100.0 * double(window) / double(total));
  // Fixed cost (codebooks, value encoders): its share of the method's memory at 32K and 128K tokens.
  const size_t fixed = cache->fixed_bytes();
  auto fixed_share = [&](int64_t n) {
    const double kv = double(cache->projected_bytes(n));
    return fixed ? 100.0 * double(fixed) / (double(fixed) + kv) : 0.0;
  };
  const double share_32k = fixed_share(32768), share_128k = fixed_share(131072);
  std::printf("%-36s %12.1f %10.3f %14s %16s %12s %8.1f%% %9.1f%%", cache->spec().c_str(), per_token, bits,
              format_bytes(double(total)).c_str(), share, fixed ? format_bytes(double(fixed)).c_str() : "0", share_32k,
              share_128k);
  if (weights) std::printf(" %14s", format_bytes(double(total + fixed + weights)).c_str());
  std::printf("\n");
  nlohmann::json r = {{"kv", cache->spec()},
                      {"bytes", total},
                      {"bytes_per_token", per_token},
                      {"bits_per_element", bits},
                      {"window_bytes", window},
                      {"fixed_bytes", fixed},
                      {"fixed_share_32k_percent", share_32k},
                      {"fixed_share_128k_percent", share_128k}};
  if (weights) r["bytes_with_weights"] = total + fixed + weights;
  return r;
}

}  // namespace

void register_memory(CLI::App& app) {
  struct Opts : CommonOptions {
    std::vector<std::string> kv{"fp16"};
    int64_t context = 131072;
    std::string arch;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("memory", "KV-cache bytes per method at a context length (exact, analytical)");
  add_common_options(*cmd, *o);
  cmd->add_option("--kv", o->kv, "KV-cache method spec(s)")->delimiter(';');
  cmd->add_option("--context", o->context, "tokens held in the cache")->check(CLI::Range(int64_t{1}, int64_t{1} << 34));
  std::string presets;
  for (const auto& p : LlamaConfig::preset_names()) presets += (presets.empty() ? "" : ", ") + p;
  cmd->add_option("--arch", o->arch, "architecture preset instead of a model file (" + presets + ")");
  cmd->callback([o] {
    apply_common_options(*o);
    if (!o->arch.empty() && !o->model_path.empty()) throw Error("memory: give --model or --arch, not both");
    KvGeometry geo;
    std::string source;
    size_t weights = 0;
    if (!o->arch.empty()) {
      const LlamaConfig c = LlamaConfig::preset(o->arch);
      geo.n_layers = c.n_layers;
      geo.n_head = c.n_head;
      geo.n_head_kv = c.n_head_kv;
      geo.head_dim = c.head_dim;
      geo.rope = Rope(c.head_dim, c.rope_theta, c.rope_layout);
      source = "arch " + o->arch;
    } else {
      const std::string path = resolve_model_path(o->model_path);
      auto model = LlamaModel::load(path);
      geo = model->kv_geometry();
      weights = model->weight_bytes();
      source = path;
    }
    const int64_t N = o->context;
    std::printf("KV memory for %s: %d layers x %d KV heads x head dim %d, %lld tokens%s\n", source.c_str(),
                geo.n_layers, geo.n_head_kv, geo.head_dim, static_cast<long long>(N),
                weights ? (", weights " + format_bytes(double(weights))).c_str() : "");
    std::printf("%-36s %12s %10s %14s %16s %12s %9s %9s%s\n", "kv method", "bytes/token", "bits/elem", "total",
                "fp16 window", "fixed", "fixed@32K", "fixed@128K", weights ? "   with weights" : "");
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& spec : o->kv) {
      runs.push_back(print_memory_row(geo, spec, N, weights));
    }
    nlohmann::json j = {{"context", N},
                        {"n_layers", geo.n_layers},
                        {"n_head_kv", geo.n_head_kv},
                        {"head_dim", geo.head_dim},
                        {"runs", runs}};
    if (!o->arch.empty()) {
      j["arch"] = o->arch;
    } else {
      j["model"] = source;
      j["weight_bytes"] = weights;
    }
    bool any_fixed = false;
    for (const auto& r : runs) any_fixed = any_fixed || r["fixed_bytes"].get<size_t>() > 0;
    if (any_fixed)
      std::printf(
          "fixed: codebooks and value encoders held whatever the context (float32), not in bytes/token; "
          "fixed@N: their share of the method's memory at N tokens (fixed + KV)\n");
    write_json(o->json_path, j);
  });
}

}  // namespace cvq
