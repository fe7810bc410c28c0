// `bench engine`: prefill and decode speed of this engine and of llama.cpp (through
// llama-cpp-python, when installed) on the same GGUF, measured in the same run, as ratios.
#include <cstdio>

#include "bench/bench_inputs.h"
#include "bench/engine_speed.h"
#include "cli/commands/common.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "model/model_paths.h"
#ifdef COMMVQ_HAVE_CUDA
#include "gpu/gpu_llama_model.h"
#endif

namespace cvq {
namespace {

void register_bench_engine(CLI::App& bench) {
  struct Opts : CommonOptions {
    int prompt_tokens = 512;
    int decode_tokens = 128;
    int reps = 3;
    bool skip_llamacpp = false;
    std::string text;
    std::string device = "cpu";
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench.add_subcommand("engine", "prefill/decode tokens/s vs llama.cpp on the same model");
  add_common_options(*cmd, *o);
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prefill length")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--decode-tokens", o->decode_tokens, "tokens decoded one at a time")->check(CLI::Range(2, 1 << 16));
  cmd->add_option("--reps", o->reps, "repetitions (best is reported)")->check(CLI::Range(1, 100));
  cmd->add_option("--text", o->text, "text the prompt is cut from (default: WikiText-2 test)");
  cmd->add_flag("--no-llamacpp", o->skip_llamacpp, "do not run the llama.cpp comparison");
  add_device_option(*cmd, o->device);
  cmd->callback([o] {
    apply_common_options(*o);
    const bool cuda = use_cuda_device(o->device);
    const std::string model_path = resolve_model_path(o->model_path);
    const std::string text_path = bench_text_path(o->text);
    auto model = LlamaModel::load(model_path);
    const std::vector<int32_t> tokens = bench_prompt_tokens(*model, text_path, o->prompt_tokens);
    const int threads = ThreadPool::global().size();
    EngineSpeed ours;
#ifdef COMMVQ_HAVE_CUDA
    if (cuda) {
      auto gpu_model = gpu::GpuLlamaModel::upload(*model);
      engine_speed_cuda(*gpu_model, model->tokenizer(), tokens, 8, 1);  // warm-up: cuBLAS setup, buffers
      ours = engine_speed_cuda(*gpu_model, model->tokenizer(), tokens, o->decode_tokens, o->reps);
    }
#endif
    if (!cuda) {
      engine_speed(*model, tokens, 8, 1);  // warm-up: page in the weights
      ours = engine_speed(*model, tokens, o->decode_tokens, o->reps);
    }
    EngineSpeed ref;
    std::string why =
        cuda ? "skipped: ours ran on cuda, the llama.cpp script runs on the CPU" : "skipped (--no-llamacpp)";
    bool have_ref =
        !o->skip_llamacpp && !cuda &&
        llamacpp_engine_speed(model_path, text_path, o->prompt_tokens, o->decode_tokens, threads, &ref, &why);
    std::printf("engine speed, %s, %d threads, prompt %d tokens, decode %d tokens (best of %d), ours on %s\n",
                model->config().name.c_str(), threads, o->prompt_tokens, o->decode_tokens, o->reps, o->device.c_str());
    std::printf("%-14s %16s %16s\n", "", "prefill tok/s", "decode tok/s");
    std::printf("%-14s %16.1f %16.1f\n", "commvq-bench", ours.prefill, ours.decode);
    nlohmann::json j = {{"model", model_path},
                        {"threads", threads},
                        {"device", o->device},
                        {"prompt_tokens", o->prompt_tokens},
                        {"decode_tokens", o->decode_tokens},
                        {"ours", {{"prefill_tokens_per_s", ours.prefill}, {"decode_tokens_per_s", ours.decode}}}};
    if (have_ref) {
      std::printf("%-14s %16.1f %16.1f\n", "llama.cpp", ref.prefill, ref.decode);
      std::printf("%-14s %15.2fx %15.2fx\n", "ratio", ours.prefill / ref.prefill, ours.decode / ref.decode);
      j["llama_cpp"] = {{"prefill_tokens_per_s", ref.prefill}, {"decode_tokens_per_s", ref.decode}};
      j["ratio"] = {{"prefill", ours.prefill / ref.prefill}, {"decode", ours.decode / ref.decode}};
    } else {
      std::printf("llama.cpp      not measured: %s\n", why.c_str());
      j["llama_cpp"] = nullptr;
      j["llama_cpp_missing_reason"] = why;
    }
    write_json(o->json_path, j);
  });
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "speed benchmarks");
  bench->require_subcommand(1);
  register_bench_engine(*bench);
  register_bench_compress(*bench);
  register_bench_batch(*bench);
  register_bench_decode(*bench);
  register_bench_grid(*bench);
  register_bench_context(*bench);
  register_bench_gpu(*bench);
}

}  // namespace cvq
