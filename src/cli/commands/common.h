#pragma once
// Options every subcommand shares and small helpers for printing and JSON output.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace cvq {

struct CommonOptions {
  std::string model_path;  // empty: the default model
  int threads = 0;         // 0: all hardware threads
  bool quiet = false;
  std::string json_path;        // write results here as JSON when set
  std::string matmul = "fp32";  // prefill matmul arithmetic for every model loaded (fp32 | bf16)
  std::string chat_template;    // "" = each model's own; chatml | llama3 | llama2
};

void add_common_options(CLI::App& cmd, CommonOptions& o, bool with_model = true);
// `--device cpu|cuda` (default cpu) for commands with a GPU path.
void add_device_option(CLI::App& cmd, std::string& device);
// True for cuda; throws a clear Error when this build has no CUDA support or no device is found.
bool use_cuda_device(const std::string& device);
void apply_common_options(const CommonOptions& o);  // threads, quiet
// `--arith native|llamacpp` (default native): llamacpp computes as llama.cpp's CPU backend, bit for
// bit (LlamaModel::use_llamacpp_arithmetic), with its f16 cache.
void add_arith_option(CLI::App& cmd, std::string& arith);
// For --arith llamacpp: switches the model and returns the KV spec for it ("fp16" becomes
// "fp16:arith=llamacpp"; other methods are refused). For native: returns spec unchanged.
class LlamaModel;
std::string apply_arith(const std::string& arith, LlamaModel& model, const std::string& kv_spec);
void write_json(const std::string& path, const nlohmann::json& j);
std::string format_bytes(double bytes);

// Subcommand registration: each adds itself to the app and sets its callback.
void register_info(CLI::App& app);
void register_generate(CLI::App& app);
void register_eval(CLI::App& app);
void register_plan(CLI::App& app);
void register_score(CLI::App& app);
void register_tables(CLI::App& app);
void register_bench(CLI::App& app);
void register_bench_gpu(CLI::App& bench);  // bench gpu-attention, gpu-memory, gpu-em
void register_bench_compress(CLI::App& bench);
void register_bench_batch(CLI::App& bench);
void register_bench_grid(CLI::App& bench);
void register_bench_context(CLI::App& bench);
void register_bench_decode(CLI::App& bench);
void register_memory(CLI::App& app);
void register_collect(CLI::App& app);
void register_calibrate_kvquant(CLI::App& app);
void register_train(CLI::App& app);
void register_convert(CLI::App& app);
void register_attention_error(CLI::App& app);

}  // namespace cvq
