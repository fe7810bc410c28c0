#pragma once
// CommVQ as a KV-cache method (docs/METHOD.md §6.1, §6.2, §8). Spec:
//   commvq:bits=2,codebook=FILE[,window=128][,sink=0][,mode=native|simulated][,compress=both|keys|values]
// Keys are kept pre-RoPE: each 128-token block leaving the full-precision window is encoded into R
// 12-bit indices per (token, KV head) — packed, 1.5 bytes each — plus one fp16 key norm per token;
// values into bits·D code bits plus one fp16 magnitude per token. Native mode computes attention on
// the codes (scores from per-step query tables and gathers; values by summing weighted codes and one
// codebook product); simulated mode stores the decoded K/V. Without codebook= the method only does
// memory accounting (`commvq-bench memory --arch ... --kv commvq:bits=2`).
#include <memory>
#include <vector>

#include "commvq/commvq_codebook.h"
#include "kv/windowed_cache.h"

namespace cvq {

class KvSpec;

struct CommvqOptions {
  int bits = 2;
  int stages = 0;  // 0: from the codebook, or round(bits·d/12) for accounting
  // Native key scores: "decode" (default) rebuilds each key from its codes once per KV head and dots
  // it with the group's queries; "table" is docs/METHOD.md §6.1's per-query tables + gathers. Same numbers; on CPU
  // with GQA the fused decode is 3-5x faster (bench/micro/bench_commvq_keys.cpp).
  bool score_tables = false;
  // Value code refinement sweeps at compression (commvq/value_refine.h): -1 = as stored in the
  // codebook; 0 = the paper's encoder alone (ablation).
  int refine_sweeps = -1;
  std::string codebook_path;
  WindowPolicy policy;
  KvExecMode mode = KvExecMode::Native;
  static CommvqOptions parse(const KvSpec& s, const KvGeometry& g);
};

class CommvqCache : public WindowedCache {
 public:
  CommvqCache(KvGeometry g, CommvqOptions opt);
  std::string spec() const override;
  const CommvqCodebook* codebook() const { return codebook_.get(); }
  // Refinement sweeps the value encoder runs: the spec's refine=, else the codebook's own.
  int value_refine_sweeps(int layer) const;
  // The codebook's parameters (keys, value encoder and codebook, float32 as held); without
  // codebook=, those of one of this shape.
  size_t fixed_bytes() const override;

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
  struct Layer {
    std::vector<uint8_t> key_codes;    // 12 bits per (token, head, stage), packed back to back
    std::vector<uint16_t> key_norms;   // fp16, per token
    std::vector<uint8_t> value_codes;  // code_bytes per token
    std::vector<uint16_t> value_p;     // fp16, per token
    int64_t n_keys = 0, n_values = 0;
  };
  void require_codebook() const;
  // Codes of tokens [t0, t1) for one KV head as uint16 [n x R].
  void unpack_key_codes(const Layer& L, int kv_head, int64_t t0, int64_t t1, uint16_t* out) const;
  void cos_sin_rows(const int32_t* positions, int64_t n, float* out) const;
  std::vector<float> mean_score_coefficients(int layer, int kv_head, const float* q_pairs, int rows) const;
  void add_mean_scores(const std::vector<float>& ab, int rows, const float* cs, int64_t n, float unit, float* scores,
                       int64_t ld) const;

  CommvqOptions opt_;
  std::shared_ptr<const CommvqCodebook> codebook_;
  int stages_ = 0;
  int value_code_bits_ = 0;
  std::vector<Layer> layers_;
  std::vector<float> offsets_;  // cos/sin rows for position offsets 0..kOffsetRows-1 (angle addition)
};

}  // namespace cvq
