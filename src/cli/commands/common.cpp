#include "cli/commands/common.h"

#include <cblas.h>

#include <cstdio>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/text_source.h"
#include "core/thread_pool.h"
#include "device/device.h"
#include "model/llama_model.h"
#include "tasks/data_paths.h"

namespace cvq {

void add_common_options(CLI::App& cmd, CommonOptions& o, bool with_model) {
  if (with_model)
    cmd.add_option("--model,-m", o.model_path,
                   "GGUF file, Hugging Face checkpoint folder, or a known model: smollm2-135m (default), "
                   "qwen2.5-coder-0.5b, qwen2.5-coder-1.5b (scripts/get-model.sh NAME installs it)");
  cmd.add_option("--threads,-t", o.threads, "worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd.add_flag("--quiet,-q", o.quiet, "no progress output");
  cmd.add_option("--json", o.json_path, "also write the results to this JSON file");
  if (with_model) {
    cmd.add_option("--matmul", o.matmul,
                   "prefill matmul arithmetic: fp32 (default; SGEMM on dequantized weights) or bf16 (weights and "
                   "activations rounded to bf16, fp32 sums; AMX / AVX-512 BF16 where the CPU has them)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    cmd.add_option("--chat-template", o.chat_template,
                   "render chat prompts in this format instead of the model's own template: chatml, llama3 or "
                   "llama2 ([INST]); for models whose template is missing or not recognised")
        ->check(CLI::IsMember({"chatml", "llama3", "llama2"}));
  }
}

void add_device_option(CLI::App& cmd, std::string& device) {
  cmd.add_option("--device", device, "where the model runs: cpu (default) or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

void add_arith_option(CLI::App& cmd, std::string& arith) {
  cmd.add_option("--arith", arith,
                 "native (default) or llamacpp: llama.cpp's CPU arithmetic bit for bit (fp16 cache, q4_1/q8_0 weights)")
      ->check(CLI::IsMember({"native", "llamacpp"}));
}

std::string apply_arith(const std::string& arith, LlamaModel& model, const std::string& kv_spec) {
  if (arith != "llamacpp") return kv_spec;
  if (kv_spec != "fp16" && kv_spec != "fp16:arith=llamacpp") {
    throw Error("--arith llamacpp reproduces llama.cpp with its f16 KV cache: use --kv fp16 (got '" + kv_spec + "')");
  }
  if (!model.llamacpp_arithmetic()) model.use_llamacpp_arithmetic();
  return "fp16:arith=llamacpp";
}

bool use_cuda_device(const std::string& device) {
  if (parse_backend(device) == Backend::Cpu) return false;
  require_cuda("--device cuda");
  return true;
}

void apply_common_options(const CommonOptions& o) {
  // Our pool parallelizes across tiles and heads; BLAS calls inside it stay single-threaded.
  openblas_set_num_threads(1);
  if (o.threads > 0) ThreadPool::set_global_threads(o.threads);
  Progress::set_quiet(o.quiet);
  LlamaModel::set_default_matmul_mode(parse_matmul_mode(o.matmul));
  LlamaModel::set_default_chat_template(o.chat_template);
}

void write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  write_file_atomic(path, j.dump(2) + "\n");
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

}  // namespace cvq
