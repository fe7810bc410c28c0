// `bench compress`: how long each KV method takes to compress a prompt's keys and values, against
// the prefill that produced them (same run). The prompt is prefilled once with the fp16 cache while
// its pre-RoPE keys and values are recorded; then each method gets those tokens exactly as a
// prefill would hand them over (append per layer) and compresses them (settle), timed.
#include <chrono>
#include <cstdio>

#include "cli/commands/common.h"
#include "commvq/kv_methods.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kv/windowed_cache.h"
#include "model/llama_model.h"
#include "model/model_paths.h"

namespace cvq {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Recorded {
  std::vector<std::vector<float>> k, v;  // per layer [n x kv_dim], k before RoPE
  std::vector<int32_t> positions;
};

}  // namespace

void register_bench_compress(CLI::App& bench) {
  struct Opts : CommonOptions {
    int prompt_tokens = 4096;
    std::vector<std::string> kv;
    std::string text;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand("compress", "compression time of each KV method vs the prefill of the same prompt");
  add_common_options(*cmd, *o);
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt length")->check(CLI::Range(128, 1 << 20));
  cmd->add_option("--kv", o->kv, "KV method spec(s) to time")->required()->delimiter(';');
  cmd->add_option("--text", o->text, "text the prompt is cut from (default: WikiText-2 test)");
  cmd->callback([o] {
    apply_common_options(*o);
    const std::string model_path = resolve_model_path(o->model_path);
    auto model = LlamaModel::load(model_path);
    const std::vector<int32_t> tokens = bench_prompt_tokens(*model, bench_text_path(o->text), o->prompt_tokens);
    const int n = o->prompt_tokens;
    const KvGeometry geo = model->kv_geometry();
    Recorded rec;
    rec.k.resize(geo.n_layers);
    rec.v.resize(geo.n_layers);
    for (int i = 0; i < n; ++i) rec.positions.push_back(i);
    LayerObserver observe = [&](int layer, const float*, const float* k, const float* v, const int32_t*, int rows) {
      const size_t D = geo.kv_dim();
      rec.k[layer].insert(rec.k[layer].end(), k, k + rows * D);
      rec.v[layer].insert(rec.v[layer].end(), v, v + rows * D);
    };
    auto fp16 = make_kv_cache("fp16", geo);
    const double t0 = now_s();
    model->forward(tokens.data(), rec.positions.data(), n, *fp16, LlamaModel::Logits::Last, &observe);
    const double prefill_s = now_s() - t0;

    std::printf("compression of a %d-token prompt, %s, %d threads, matmul %s (prefill %.2f s, %.1f tok/s)\n", n,
                model->config().name.c_str(), ThreadPool::global().size(), matmul_mode_name(model->matmul_mode()),
                prefill_s, n / prefill_s);
    std::printf("%-58s %12s %14s %14s\n", "kv method", "seconds", "tokens/s", "vs prefill");
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& spec : o->kv) {
      auto cache = make_kv_cache(spec, geo);
      const double c0 = now_s();
      for (int l = 0; l < geo.n_layers; ++l)
        cache->append(l, rec.k[l].data(), rec.v[l].data(), rec.positions.data(), n);
      if (auto* w = dynamic_cast<WindowedCache*>(cache.get())) w->settle();
      const double s = now_s() - c0;
      std::printf("%-58s %12.3f %14.1f %13.1f%%\n", spec.c_str(), s, n / s, 100.0 * s / prefill_s);
      runs.push_back({{"kv", spec},
                      {"seconds", s},
                      {"tokens_per_s", n / s},
                      {"share_of_prefill", s / prefill_s},
                      {"kv_bytes", cache->bytes()}});
    }
    write_json(o->json_path, {{"model", model_path},
                              {"prompt_tokens", n},
                              {"threads", ThreadPool::global().size()},
                              {"matmul", matmul_mode_name(model->matmul_mode())},
                              {"prefill_seconds", prefill_s},
                              {"methods", runs}});
  });
}

}  // namespace cvq
