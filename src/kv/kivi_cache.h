#pragma once
// KIVI (Liu et al., ICML 2024): asymmetric min-max quantization, keys per channel in groups of G
// tokens, values per token in groups of G channels, fp16 scale and zero point, 32-bit word packing
// (BASELINES.md). Spec: kivi:k=2,v=2,group=32,window=128[,mode=native|simulated]; k, v in {1, 2, 4}.
//
// Cache state (KIVI's reference, on top of WindowedCache's lazy compression): keys leave the fp16
// window in blocks of R = window tokens (prefill L: the first L - L mod R are quantized); values keep
// the R most recent tokens in fp16 (the oldest is quantized once R+1 are held). Keys are post-RoPE.
// Storage per layer and KV head (head-major, so each head's kernels stream contiguous memory): keys
// [group g][channel][words] + fp16 scale/zero [g][channel]; values [token][channel group][words] +
// fp16 scale/zero [token][channel group]:
//   (b + 32/G) bits per element for G*b a multiple of 32 (2-bit, G = 32: 3 bits).
#include <vector>

#include "kv/windowed_cache.h"

namespace cvq {

class KvSpec;

struct KiviOptions {
  int key_bits = 2, value_bits = 2, group = 32, window = 128;
  int sink = 0;  // leading tokens kept in fp16 (attention sink), as the windowed base supports
  KvExecMode mode = KvExecMode::Native;
  static KiviOptions parse(const KvSpec& spec, const KvGeometry& g);  // validates; errors name the spec
};

class KiviCache : public WindowedCache {
 public:
  KiviCache(KvGeometry g, KiviOptions o);
  std::string spec() const override;
  const KiviOptions& options() const { return opt_; }

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
  struct HeadStore {
    std::vector<uint32_t> k_codes, v_codes;
    std::vector<uint16_t> k_scale, k_zero, v_scale, v_zero;
  };
  using Store = std::vector<HeadStore>;  // one per KV head
  KiviOptions opt_;
  int k_words_, v_words_;  // words per key (group, channel) / per value (token, channel group)
  std::vector<Store> store_;
};

}  // namespace cvq
