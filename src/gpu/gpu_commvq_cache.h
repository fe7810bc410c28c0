#pragma once
// A CommVQ KV cache on the device for decode studies (memory and speed at long context): per
// layer, a store of coded tokens (12-bit key codes held in uint16, fp16 key norm, value code bits,
// fp16 value magnitude) plus the full-precision fp16 window of docs/METHOD.md §8; attention runs on the
// codes (kernels/cuda/commvq_attention_gpu.h). The coded store is filled by fill_random (random
// codes and codebooks of the right shapes): compressing the window needs the key and value encoders
// on the device, which this backend does not have yet, so append() only grows the window and
// throws once it would pass `window` tokens.
#include <cstdint>
#include <string>
#include <vector>

#include "gpu/gpu_kv_cache.h"
#include "gpu/rope_tables.h"

namespace cvq::gpu {

struct GpuCommvqShape {
  int bits = 2;      // 1 or 2 (key stages R = round(bits·d/12), value code bits = bits·D)
  int window = 128;  // full-precision tokens
  int key_stages(int head_dim) const;
  int value_code_bits(int kv_dim) const { return bits * kv_dim; }
  // Stored bytes per token and layer in the coded store (as held on the device).
  size_t coded_bytes_per_token(int n_head_kv, int head_dim) const;
  // Codebook bytes per layer (keys n_kv·R·2·64·d/2 floats, values code_bits·D floats + D scale).
  size_t codebook_bytes_per_layer(int n_head_kv, int head_dim) const;
};

class GpuCommvqCache : public GpuKvCache {
 public:
  GpuCommvqCache(const KvGeometry& g, GpuCommvqShape shape, int64_t coded_capacity);
  void append(int layer, float* k_pre_rope, const float* v, const int32_t* positions, int n,
              const float* cos_sin) override;
  void attend(int layer, const float* q_post_rope, const int32_t* positions, int n, float* out) override;
  size_t bytes() const override;
  size_t allocated_bytes() const override;
  int64_t n_tokens(int layer) const override;
  void clear() override;
  std::string spec() const override { return "commvq:bits=" + std::to_string(shape_.bits) + " (cuda)"; }
  // Random codebooks and n coded tokens in every layer (positions 0..n-1); empties the windows.
  void fill_random(int64_t n_coded, uint64_t seed);
  size_t codebook_bytes() const;

 private:
  struct Layer {
    cuda::DeviceBuffer<float> key_xy, value_codebook, value_scale;
    cuda::DeviceBuffer<uint16_t> key_codes, key_norms, value_p, win_k, win_v;
    cuda::DeviceBuffer<uint8_t> value_codes;
    int64_t n_coded = 0, n_window = 0;
  };
  GpuCommvqShape shape_;
  int64_t capacity_;
  int stages_, code_bits_;
  std::vector<Layer> layers_;
  RopeTablesGpu tables_;
};

}  // namespace cvq::gpu
