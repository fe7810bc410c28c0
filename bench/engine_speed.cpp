#include "bench/engine_speed.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commvq/kv_methods.h"
#include "core/atomic_file.h"
#include "core/resource_paths.h"
#include "model/llama_model.h"
#include "tasks/generation.h"
#ifdef COMMVQ_HAVE_CUDA
#include "gpu/gpu_generation.h"
#include "gpu/gpu_kv_cache.h"
#include "gpu/gpu_llama_model.h"
#endif

namespace cvq {

EngineSpeed engine_speed(const LlamaModel& model, const std::vector<int32_t>& prompt, int decode_tokens, int reps) {
  EngineSpeed best;
  for (int r = 0; r < reps; ++r) {
    auto cache = make_kv_cache("fp16", model.kv_geometry());
    GenerationResult g = generate_greedy_ids(model, *cache, prompt, decode_tokens + 1);
    best.prefill = std::max(best.prefill, g.prefill_tokens_per_s());
    best.decode = std::max(best.decode, g.decode_tokens_per_s());
  }
  return best;
}

#ifdef COMMVQ_HAVE_CUDA
EngineSpeed engine_speed_cuda(gpu::GpuLlamaModel& model, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                              int decode_tokens, int reps) {
  EngineSpeed best;
  gpu::GpuFp16Cache cache(model.kv_geometry(), static_cast<int64_t>(prompt.size()) + decode_tokens + 1);
  for (int r = 0; r < reps; ++r) {
    cache.clear();
    GenerationResult g = gpu::generate_greedy_gpu(model, cache, tok, prompt, decode_tokens + 1);
    best.prefill = std::max(best.prefill, g.prefill_tokens_per_s());
    best.decode = std::max(best.decode, g.decode_tokens_per_s());
  }
  return best;
}
#endif

bool llamacpp_engine_speed(const std::string& model_path, const std::string& text_path, int prompt_tokens,
                           int decode_tokens, int threads, EngineSpeed* out, std::string* why) {
  const std::string script = share_dir() + "/scripts/llamacpp-bench.py";
  if (!std::filesystem::exists(script)) {
    *why = script + " not found";
    return false;
  }
  const std::string json_path =
      (std::filesystem::temp_directory_path() / ("commvq-llamacpp-" + std::to_string(::getpid()) + ".json")).string();
  const std::string cmd = "python3 '" + script + "' --model '" + model_path + "' --text '" + text_path +
                          "' --prompt-tokens " + std::to_string(prompt_tokens) + " --decode-tokens " +
                          std::to_string(decode_tokens) + " --threads " + std::to_string(threads) + " --json '" +
                          json_path + "' > /dev/null";
  int rc = std::system(cmd.c_str());
  if (rc != 0 || !std::filesystem::exists(json_path)) {
    *why = WIFEXITED(rc) && WEXITSTATUS(rc) == 3
               ? "llama-cpp-python is not installed (pip install llama-cpp-python)"
               : "the llama.cpp benchmark script failed (exit " + std::to_string(rc) + ")";
    return false;
  }
  auto j = nlohmann::json::parse(read_file(json_path));
  std::filesystem::remove(json_path);
  out->prefill = j.at("prefill_tokens_per_s").get<double>();
  out->decode = j.at("decode_tokens_per_s").get<double>();
  return true;
}

}  // namespace cvq
