#pragma once
// `bench engine`: prefill and decode tokens/s of this engine (CPU, or CUDA when built with it) and of
// llama.cpp through llama-cpp-python on the same GGUF, each the best of several repetitions.
#include <cstdint>
#include <string>
#include <vector>

namespace cvq {

class LlamaModel;
class Tokenizer;
namespace gpu {
class GpuLlamaModel;
}

struct EngineSpeed {
  double prefill = 0.0, decode = 0.0;  // tokens/s
};

// Greedy generation with the fp16 cache: the prompt prefilled, then decode_tokens + 1 steps.
EngineSpeed engine_speed(const LlamaModel& model, const std::vector<int32_t>& prompt, int decode_tokens, int reps);
#ifdef COMMVQ_HAVE_CUDA
EngineSpeed engine_speed_cuda(gpu::GpuLlamaModel& model, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                              int decode_tokens, int reps);
#endif
// scripts/llamacpp-bench.py on the same prompt; false (with the reason) when llama-cpp-python or
// the script is not available or the script fails.
bool llamacpp_engine_speed(const std::string& model_path, const std::string& text_path, int prompt_tokens,
                           int decode_tokens, int threads, EngineSpeed* out, std::string* why);

}  // namespace cvq
