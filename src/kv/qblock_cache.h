#pragma once
// llama.cpp cache types q8_0 and q4_0 (`--cache-type-k/-v`): post-RoPE keys and values quantized per
// token in blocks of 32 along the head dim with llama.cpp's reference quantizers (8.5 / 4.5 bits per
// element), no full-precision window: everything older than the current forward call is quantized
// (the current call attends in fp16, as the window of the shared cache base). Spec: q8_0 or q4_0,
// option mode=native|simulated.
#include <vector>

#include "kernels/cpu/qblock_attention.h"
#include "kv/windowed_cache.h"

namespace cvq {

class QBlockCache : public WindowedCache {
 public:
  QBlockCache(KvGeometry g, QBlockKind kind, KvExecMode mode);
  std::string spec() const override;

 protected:
  void compress_keys(int layer, int64_t first, int n, const float* k, const int32_t* positions) override;
  void compress_values(int layer, int64_t first, int n, const float* v, const int32_t* positions) override;
  void decode_keys(int layer, int64_t first, int n, float* out) const override;
  void decode_values(int layer, int64_t first, int n, float* out) const override;
  void native_scores(int layer, int kv_head, const float* q, int rows, float scale, int64_t t0, int64_t t1,
                     float* scores, int64_t ld) const override;
  void native_values(int layer, int kv_head, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1,
                     float* out) const override;
  size_t compressed_bytes(int layer) const override;
  size_t compressed_bytes_for(int64_t n_keys, int64_t n_values) const override;
  void clear_compressed() override;

 private:
  void quantize_rows(const float* x, int n, std::vector<std::vector<uint8_t>>& dst) const;
  void dequantize_rows(const std::vector<std::vector<uint8_t>>& src, int64_t first, int n, float* out) const;
  QBlockKind kind_;
  int64_t head_bytes_;  // one token, one KV head
  // [layer][kv head] -> [token x head_bytes_] (head-major: each head's kernel streams contiguously)
  std::vector<std::vector<std::vector<uint8_t>>> k_, v_;
};

}  // namespace cvq
