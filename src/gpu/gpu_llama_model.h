#pragma once
// The llama-family forward pass on a CUDA device: weights dequantized to fp16 (or bf16) at load
// from the CPU model's GGUF (WeightMatrix / quant_blocks), cuBLAS GEMMs with fp32 accumulation,
// RMSNorm / RoPE / SwiGLU / embedding kernels, and a device KV cache (gpu_kv_cache.h). Computes the
// same function as LlamaModel::forward; differences are the half-precision rounding of weights and
// GEMM inputs.
#include <cstdint>
#include <memory>
#include <vector>

#include "gpu/gpu_kv_cache.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/gemm_gpu.h"
#include "model/llama_config.h"
#include "model/llama_model.h"

namespace cvq::gpu {

class GpuLlamaModel {
 public:
  // Uploads `model`'s weights to the current device (throws if no device can be used).
  static std::unique_ptr<GpuLlamaModel> upload(const LlamaModel& model, cuda::HalfType type = cuda::HalfType::F16);
  // Pseudo-random weights with a config's shapes (e.g. LlamaConfig::preset("llama-3.1-8b")), for
  // memory and speed studies without the real file. Norm weights are 1; matrices ~ U(±1/√cols).
  static std::unique_ptr<GpuLlamaModel> random(const LlamaConfig& config, uint64_t seed,
                                               cuda::HalfType type = cuda::HalfType::F16);

  const LlamaConfig& config() const { return config_; }
  KvGeometry kv_geometry() const { return geometry_; }
  size_t weight_bytes() const;  // device bytes held by the weights

  // Returns logits [rows × n_vocab] on the host with rows = 0, 1 or n per `which`.
  std::vector<float> forward(const int32_t* tokens, const int32_t* positions, int n, GpuKvCache& cache,
                             LlamaModel::Logits which);

 private:
  struct Matrix {
    cuda::DeviceBuffer<uint16_t> w;  // rows × cols, row-major
    int64_t rows = 0, cols = 0;
  };
  struct Layer {
    cuda::DeviceBuffer<float> attn_norm, ffn_norm, bq, bk, bv;
    Matrix wq, wk, wv, wo, w_gate, w_up, w_down;
  };
  GpuLlamaModel() = default;
  void matmul(const Matrix& m, const float* x, int n, float* y);

  LlamaConfig config_;
  KvGeometry geometry_;
  cuda::HalfType type_ = cuda::HalfType::F16;
  Matrix token_embd_, output_;
  bool tied_output_ = false;
  cuda::DeviceBuffer<float> output_norm_;
  std::vector<Layer> layers_;
  // Activations, grown to the largest batch seen.
  cuda::DeviceBuffer<float> x_, h_, q_, k_, v_, attn_, gate_, up_, logits_, cos_sin_;
  cuda::DeviceBuffer<uint16_t> x16_;
  cuda::DeviceBuffer<int32_t> ids_;
};

}  // namespace cvq::gpu
