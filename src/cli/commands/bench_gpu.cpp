// `bench gpu-attention`, `bench gpu-memory`, `bench gpu-em`: the CUDA studies (decode-attention
// latency of one layer; peak device memory of decoding at long context with random weights of a
// preset's shapes; key-EM iteration time, GPU vs CPU).
// In a build without CUDA they exist and say so.
#include <cstdio>

#include "cli/commands/common.h"
#include "core/error.h"
#include "device/device.h"
#include "model/llama_config.h"
#ifdef COMMVQ_HAVE_CUDA
#include "bench/gpu/gpu_attention_bench.h"
#include "bench/gpu/gpu_em_bench.h"
#include "bench/gpu/gpu_memory_study.h"
#endif

namespace cvq {
namespace {

void register_gpu_attention(CLI::App& bench) {
  struct Opts : CommonOptions {
    std::vector<int64_t> contexts{8192, 32768, 131072};
    int bits = 2;
    int reps = 20;
    int n_head = 32, n_head_kv = 8, head_dim = 128;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand("gpu-attention",
                                   "CUDA decode attention of one layer: fp16 vs decode-then-attend vs CommVQ on codes");
  add_common_options(*cmd, *o, false);
  cmd->add_option("--context", o->contexts, "context lengths (tokens)")->delimiter(',');
  cmd->add_option("--bits", o->bits, "CommVQ bits (1 or 2)")->check(CLI::IsMember({1, 2}));
  cmd->add_option("--reps", o->reps, "timed repetitions (median reported)")->check(CLI::Range(1, 10000));
  cmd->add_option("--heads", o->n_head, "query heads (default: LLaMA-3.1-8B's 32)");
  cmd->add_option("--kv-heads", o->n_head_kv, "KV heads (8)");
  cmd->add_option("--head-dim", o->head_dim, "head dim (128)");
  cmd->callback([o] {
    apply_common_options(*o);
    require_cuda("bench gpu-attention");
#ifdef COMMVQ_HAVE_CUDA
    gpu::AttentionBenchShape s;
    s.n_head = o->n_head;
    s.n_head_kv = o->n_head_kv;
    s.head_dim = o->head_dim;
    s.bits = o->bits;
    const auto rows = gpu::bench_decode_attention(s, o->contexts, o->reps, 1);
    const auto dev = cuda_devices();
    std::printf("decode attention, one layer, one token (%d q heads, %d kv heads, d=%d, CommVQ %d-bit) on %s\n",
                s.n_head, s.n_head_kv, s.head_dim, s.bits, dev.empty() ? "?" : dev.front().name.c_str());
    std::printf("%10s %12s %18s %14s %12s\n", "context", "fp16 ms", "decode+attend ms", "commvq ms", "|diff|max");
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& r : rows) {
      std::printf("%10lld %12.4f %18.4f %14.4f %12.2e\n", static_cast<long long>(r.context), r.fp16_ms, r.decoded_ms,
                  r.codes_ms, r.max_abs_diff_codes_vs_decoded);
      runs.push_back({{"context", r.context},
                      {"fp16_ms", r.fp16_ms},
                      {"decode_then_attend_ms", r.decoded_ms},
                      {"commvq_codes_ms", r.codes_ms},
                      {"max_abs_diff_codes_vs_decoded", r.max_abs_diff_codes_vs_decoded},
                      {"max_abs_output", r.max_abs_output}});
    }
    write_json(o->json_path, {{"bench", "gpu-attention"},
                              {"device", dev.empty() ? "" : dev.front().name},
                              {"n_head", s.n_head},
                              {"n_head_kv", s.n_head_kv},
                              {"head_dim", s.head_dim},
                              {"bits", s.bits},
                              {"reps", o->reps},
                              {"runs", runs}});
#endif
  });
}

void register_gpu_memory(CLI::App& bench) {
  struct Opts : CommonOptions {
    std::string arch = "llama-3.1-8b";
    bool random_weights = false;
    std::string kv = "fp16";
    int64_t context = 122880;
    int decode_steps = 8;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand("gpu-memory", "CUDA peak memory and decode speed at long context (random weights)");
  add_common_options(*cmd, *o, false);
  cmd->add_option(
      "--arch", o->arch, "model shapes: " + [] {
        std::string k;
        for (const auto& n : LlamaConfig::preset_names()) k += (k.empty() ? "" : ", ") + n;
        return k;
      }());
  cmd->add_flag("--random-weights", o->random_weights, "use pseudo-random weights of --arch's shapes (required)");
  cmd->add_option("--kv", o->kv, "fp16, commvq-1 or commvq-2")->check(CLI::IsMember({"fp16", "commvq-1", "commvq-2"}));
  cmd->add_option("--context", o->context, "tokens in the cache before decoding")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--decode-steps", o->decode_steps, "tokens decoded (timed)")->check(CLI::Range(1, 128));
  cmd->callback([o] {
    apply_common_options(*o);
    if (!o->random_weights)
      throw Error("bench gpu-memory: pass --random-weights (the study uses " + o->arch +
                  "'s shapes without its weights)");
    const LlamaConfig cfg = LlamaConfig::preset(o->arch);
    require_cuda("bench gpu-memory");
#ifdef COMMVQ_HAVE_CUDA
    const auto r = gpu::gpu_decode_memory(cfg, o->kv, o->context, o->decode_steps, 1);
    std::printf("%s, %s KV, %lld tokens, random weights, on %s\n", o->arch.c_str(), r.kv.c_str(),
                static_cast<long long>(r.context), r.device.c_str());
    std::printf("  analytical: weights %s + KV cache %s (allocated; stored %s) + codebooks %s = %s\n",
                format_bytes(double(r.weights_bytes)).c_str(), format_bytes(double(r.cache_allocated_bytes)).c_str(),
                format_bytes(double(r.cache_bytes)).c_str(), format_bytes(double(r.codebook_bytes)).c_str(),
                format_bytes(double(r.analytic_total)).c_str());
    std::printf("  measured:   allocator peak %s, driver used +%s; decode %.3f ms/token\n",
                format_bytes(double(r.allocator_peak_bytes)).c_str(),
                format_bytes(double(r.driver_used_delta_bytes)).c_str(), r.decode_ms_per_token);
    write_json(o->json_path, {{"bench", "gpu-memory"},
                              {"arch", o->arch},
                              {"kv", r.kv},
                              {"context", r.context},
                              {"device", r.device},
                              {"weights_bytes", r.weights_bytes},
                              {"cache_stored_bytes", r.cache_bytes},
                              {"cache_allocated_bytes", r.cache_allocated_bytes},
                              {"codebook_bytes", r.codebook_bytes},
                              {"analytic_total_bytes", r.analytic_total},
                              {"allocator_peak_bytes", r.allocator_peak_bytes},
                              {"driver_used_delta_bytes", r.driver_used_delta_bytes},
                              {"decode_ms_per_token", r.decode_ms_per_token}});
#endif
  });
}

void register_gpu_em(CLI::App& bench) {
  struct Opts : CommonOptions {
    int64_t tokens = 65536;
    int head_dim = 128;
    int iterations = 5;
    double tau = 1e-3;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd =
      bench.add_subcommand("gpu-em", "CommVQ key EM iteration (E + M step): CUDA vs CPU on random unit vectors");
  add_common_options(*cmd, *o, false);
  cmd->add_option("--tokens", o->tokens, "training vectors")->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--head-dim", o->head_dim, "head dim (even)")->check(CLI::Range(2, 256));
  cmd->add_option("--iterations", o->iterations, "EM iterations timed")->check(CLI::Range(1, 1000));
  cmd->add_option("--tau", o->tau, "soft-assignment temperature");
  cmd->callback([o] {
    apply_common_options(*o);
    require_cuda("bench gpu-em");
#ifdef COMMVQ_HAVE_CUDA
    const auto r = gpu::bench_key_em(o->tokens, o->head_dim, o->iterations, o->tau, 1);
    std::printf("key EM, %lld tokens, d=%d, tau %g, %d iterations: CPU %.2f ms/iteration, CUDA %.2f ms/iteration\n",
                static_cast<long long>(r.tokens), r.head_dim, o->tau, r.iterations, r.cpu_ms_per_iteration,
                r.gpu_ms_per_iteration);
    std::printf("last loss: CPU %.6e, CUDA %.6e\n", r.cpu_last_loss, r.gpu_last_loss);
    write_json(o->json_path, {{"bench", "gpu-em"},
                              {"tokens", r.tokens},
                              {"head_dim", r.head_dim},
                              {"iterations", r.iterations},
                              {"tau", o->tau},
                              {"cpu_ms_per_iteration", r.cpu_ms_per_iteration},
                              {"gpu_ms_per_iteration", r.gpu_ms_per_iteration},
                              {"cpu_last_loss", r.cpu_last_loss},
                              {"gpu_last_loss", r.gpu_last_loss}});
#endif
  });
}

}  // namespace

void register_bench_gpu(CLI::App& bench) {
  register_gpu_attention(bench);
  register_gpu_memory(bench);
  register_gpu_em(bench);
}

}  // namespace cvq
