// `bench context`: the engine at long context, per KV method — prefill tokens/s of an N-token
// prompt with attention's share of it, the first decode step (where windowed methods compress the
// prompt), steady decode tokens/s at that context against the memory-bandwidth bound measured in
// the same run (weight bytes + the cache's bytes read per token), and the process's peak RSS.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>

#include "cli/commands/common.h"
#include "commvq/kv_methods.h"
#include "core/error.h"
#include "core/text_source.h"
#include "core/thread_pool.h"
#include "kv/timed_cache.h"
#include "model/llama_model.h"
#include "model/model_paths.h"
#include "tasks/generation.h"

namespace cvq {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int64_t vm_hwm_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}
void reset_vm_hwm() {
  std::ofstream out("/proc/self/clear_refs");
  if (out) out << "5";
}

__attribute__((target_clones("avx512f", "avx2", "default"))) float sum_floats(const float* p, int64_t n) {
  float acc[32] = {};
  for (int64_t i = 0; i + 32 <= n; i += 32)
    for (int k = 0; k < 32; ++k) acc[k] += p[i + k];
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

// Read bandwidth of this machine with the engine's threads: the best of 5 passes summing a buffer
// larger than the caches (what decode does with the weights).
double read_bandwidth_bytes_per_s() {
  const size_t n = size_t{256} << 20;  // 1 GiB of floats
  std::vector<float> buf(n, 1.0f);
  ThreadPool& pool = ThreadPool::global();
  std::vector<double> part_sums(static_cast<size_t>(pool.size()), 0.0);
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    pool.parallel_for(static_cast<int64_t>(n / 1024), [&](int64_t b, int64_t e, int part) {
      part_sums[static_cast<size_t>(part)] += sum_floats(buf.data() + b * 1024, (e - b) * 1024);
    });
    best = std::max(best, static_cast<double>(n * sizeof(float)) / since(t0));
  }
  if (part_sums[0] < 0) std::printf(" ");  // keeps the sums observable
  return best;
}

}  // namespace

void register_bench_context(CLI::App& bench) {
  struct Opts : CommonOptions {
    std::vector<int> prompt_tokens{8192};
    std::vector<std::string> kv{"fp16"};
    int decode_tokens = 16;
    std::string text;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand(
      "context", "prefill / decode speed at long context per KV method, with attention's share and peak RSS");
  add_common_options(*cmd, *o);
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt lengths (comma list)")
      ->delimiter(',')
      ->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--kv", o->kv, "KV method spec(s)")->delimiter(';');
  cmd->add_option("--decode-tokens", o->decode_tokens, "steady decode steps timed after the first")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--text", o->text, "text the prompt is cut from, repeated as needed (default: WikiText-2 test)");
  cmd->callback([o] {
    apply_common_options(*o);
    const std::string model_path = resolve_model_path(o->model_path);
    const std::string text_path = bench_text_path(o->text);
    auto model = LlamaModel::load(model_path);
    const std::vector<int32_t> text_ids = model->tokenizer().encode(read_text_file(text_path), false, false);
    if (text_ids.empty()) throw Error(text_path + ": no tokens");
    const int threads = ThreadPool::global().size();
    const double bw = read_bandwidth_bytes_per_s();
    const double weights = static_cast<double>(model->weight_bytes());
    std::printf("long-context speed, %s, %d threads, matmul %s; read bandwidth %.1f GB/s, weights %.2f GB\n",
                model->config().name.c_str(), threads, matmul_mode_name(model->matmul_mode()), bw / 1e9, weights / 1e9);
    std::printf("%-44s %8s %10s %7s %9s %10s %9s %9s\n", "kv method", "prompt", "prefill/s", "attn %", "1st step",
                "decode/s", "of bound", "peak RSS");
    nlohmann::json runs = nlohmann::json::array();
    for (const int P : o->prompt_tokens) {
      if (P + o->decode_tokens + 1 > model->config().n_ctx_train) {
        throw Error("--prompt-tokens " + std::to_string(P) + " + decode exceeds the model's context (" +
                    std::to_string(model->config().n_ctx_train) + ")");
      }
      std::vector<int32_t> prompt(static_cast<size_t>(P));
      for (int i = 0; i < P; ++i) prompt[i] = text_ids[static_cast<size_t>(i) % text_ids.size()];
      std::vector<int32_t> positions(static_cast<size_t>(P));
      for (int i = 0; i < P; ++i) positions[i] = i;
      for (const auto& spec : o->kv) {
        TimedKvCache cache(make_kv_cache(spec, model->kv_geometry()));
        reset_vm_hwm();
        auto t0 = Clock::now();
        std::vector<float> logits = model->forward(prompt.data(), positions.data(), P, cache, LlamaModel::Logits::Last);
        const double prefill_s = since(t0);
        const double attn_share = cache.attend_seconds() / prefill_s;
        int32_t pos = P;
        int32_t next = argmax(logits.data(), model->config().n_vocab);
        t0 = Clock::now();
        logits = model->forward(&next, &pos, 1, cache, LlamaModel::Logits::Last);  // compresses the prompt
        const double first_s = since(t0);
        ++pos;
        t0 = Clock::now();
        for (int s = 0; s < o->decode_tokens; ++s, ++pos) {
          next = argmax(logits.data(), model->config().n_vocab);
          logits = model->forward(&next, &pos, 1, cache, LlamaModel::Logits::Last);
        }
        const double decode_tps = o->decode_tokens / since(t0);
        // Bytes a decode step must read: the weights and the whole cache.
        const double bound_tps = bw / (weights + static_cast<double>(cache.bytes()));
        const int64_t rss = vm_hwm_bytes();
        std::printf("%-44s %8d %10.1f %6.1f%% %8.2fs %10.2f %8.0f%% %9s\n", spec.c_str(), P, P / prefill_s,
                    100.0 * attn_share, first_s, decode_tps, 100.0 * decode_tps / bound_tps,
                    format_bytes(static_cast<double>(rss)).c_str());
        std::fflush(stdout);
        runs.push_back({{"kv", spec},
                        {"prompt_tokens", P},
                        {"prefill_tokens_per_s", P / prefill_s},
                        {"prefill_attention_share", attn_share},
                        {"first_decode_step_seconds", first_s},
                        {"decode_tokens_per_s", decode_tps},
                        {"decode_bandwidth_bound_tokens_per_s", bound_tps},
                        {"kv_bytes", cache.bytes()},
                        {"peak_rss_bytes", rss}});
      }
    }
    write_json(o->json_path, {{"model", model_path},
                              {"threads", threads},
                              {"matmul", matmul_mode_name(model->matmul_mode())},
                              {"read_bandwidth_bytes_per_s", bw},
                              {"weight_bytes", weights},
                              {"runs", runs}});
  });
}

}  // namespace cvq
