#pragma once
// KVQuant (Hooper et al., NeurIPS 2024; BASELINES.md) on the shared windowed cache (docs/METHOD.md §8):
// pre-RoPE keys quantized per channel, values per token, with the non-uniform "nuq" datatype (a
// per-layer 2^b-level lookup table from offline k-means, kv/nuq.h) and dense-and-sparse outliers.
//
// Spec: kvquant:bits=2,outliers=0.01,sink=0,calib=FILE[,window=128][,qnorm=0|1][,keyout=budget|all]
//       [,mode=native|simulated]
//   bits in {2, 3, 4}; outliers = fraction kept exactly (0.01: the 0.5% / 99.5% thresholds);
//   sink = leading tokens kept in fp16; qnorm defaults to 1 for 2 bits, 0 otherwise; calib = file from
//   `commvq-bench calibrate-kvquant` (default: "<model>.kvquant.safetensors" next to the default
//   model); calib=none builds a cache for memory accounting only (it refuses to compress).
//
// Keys (pre-RoPE, leave the fp16 window in blocks of R = window tokens):
//   channel c is normalized by its calibrated thresholds [lo_c, hi_c] (fp16 offset and scale per
//   channel and layer, stored once per layer), coded with the key LUT, b bits per element.
//   Outliers: a fixed budget of B = round(outliers * R * kv_dim) entries per block — the B elements of
//   the block that lie farthest outside their channel's thresholds (|x - offset| / scale largest). On
//   data like the calibration text this is the set of values outside the thresholds; when more lie
//   outside, the least extreme are clipped to the threshold (stats() counts them). The fixed budget
//   makes memory exactly predictable (projected_bytes == bytes for any input).
//   keyout=all instead stores exactly the elements outside the thresholds (the paper's rule; the count
//   varies with the data, a u32 start per block is added, and projected_bytes assumes the nominal
//   budget, so it equals bytes() only on data with exactly that many outliers).
//   Sparse store, CSR by token: per token a u16 end index within its block; per entry u16 channel +
//   fp16 value (4 bytes).
// Values (leave the window in the same blocks; quantized per token, so online):
//   each token's k = round(outliers * kv_dim / 2) smallest and k largest entries are outliers (u16
//   channel + fp16 value, 4 bytes each, exactly 2k per token); the rest is normalized by that range
//   (fp16 offset and scale per token) and coded with the value LUT.
// Attention: simulated mode decodes tokens (the base applies RoPE to keys); native mode decodes tiles
// of one head's keys from their codes, applies RoPE at the tokens' positions and takes dot products,
// and accumulates probability-weighted decoded value tiles — same arithmetic as the decode path.
// Bytes per layer: packed codes (ceil(kv_dim*b/8) per token, keys and values), key CSR ends (2 per
// token), key outlier entries (4 * B per block), value scale/offset (4 per token), value outlier
// entries (4 * 2k per token), plus per layer the key channel offset/scale (4 * kv_dim) and the two
// LUTs (levels and bounds as f32) once the layer holds compressed keys / values.
#include <string>
#include <vector>

#include "kv/kvquant_calib.h"
#include "kv/nuq.h"
#include "kv/windowed_cache.h"

namespace cvq {

class KvSpec;

struct KvQuantOptions {
  int bits = 2;
  double outliers = 0.01;
  int sink = 0;
  int window = 128;
  int qnorm = -1;                 // -1: default (on for 2 bits)
  bool key_outliers_all = false;  // keyout=all: store every key outside its thresholds (variable count)
  std::string calib;              // path; "none": memory accounting only
  KvExecMode mode = KvExecMode::Native;
  bool use_qnorm() const { return qnorm < 0 ? bits == 2 : qnorm != 0; }
  // Validates (errors name the spec); an absent calib= becomes the default path next to the model.
  static KvQuantOptions parse(const KvSpec& spec, const KvGeometry& g);
};

struct KvQuantStats {
  int64_t key_elements = 0;  // compressed key elements so far
  int64_t key_outside = 0;   // of those, outside their channel's calibrated thresholds
  int64_t key_clipped = 0;   // outside, but beyond the block's outlier budget (clipped)
  int64_t key_stored = 0;    // key outlier entries stored
  int64_t value_elements = 0, value_stored = 0;
};

class KvQuantCache : public WindowedCache {
 public:
  KvQuantCache(KvGeometry g, KvQuantOptions o);                                   // loads o.calib
  KvQuantCache(KvGeometry g, KvQuantOptions o, const KvQuantCalibration& calib);  // tests, tools
  std::string spec() const override;
  const KvQuantOptions& options() const { return opt_; }
  const KvQuantStats& stats() const { return stats_; }
  int key_outlier_budget() const { return key_budget_; }            // B, per block of `window` keys
  int value_outliers_per_token() const { return 2 * value_side_; }  // 2k
  // Average stored bits per compressed element over n_keys keys and n_values values of one layer.
  double bits_per_element(int64_t n_keys, int64_t n_values) const;

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
  struct Params {                     // calibrated, per layer
    std::vector<NuqRange> key_range;  // [kv_dim]
    NuqLut key_lut, value_lut;
  };
  struct Store {
    std::vector<uint8_t> k_codes;                 // [n_k x row_bytes]
    std::vector<uint16_t> k_row_end;              // [n_k] end of the token's entries within its block
    std::vector<uint16_t> k_out_chan, k_out_val;  // [n_blocks x B] channel, fp16 value
    std::vector<uint32_t> k_block_start;          // keyout=all: first entry of each block
    std::vector<uint8_t> v_codes;                 // [n_v x row_bytes]
    std::vector<uint16_t> v_offset, v_scale;      // [n_v] fp16
    std::vector<uint16_t> v_out_chan, v_out_val;  // [n_v x 2k]
  };
  void init(const KvQuantCalibration* calib);
  void require_calibration() const;
  // Dequantized pre-RoPE key channels [c0, c0 + n) of compressed token t (outliers applied).
  void key_row(int layer, int64_t t, int c0, int n, float* out) const;
  void value_row(int layer, int64_t t, int c0, int n, float* out) const;
  size_t static_key_bytes() const;
  size_t static_value_bytes() const;

  KvQuantOptions opt_;
  int row_bytes_ = 0, key_budget_ = 0, value_side_ = 0;
  bool calibrated_ = false;
  std::vector<Params> params_;
  std::vector<Store> store_;
  KvQuantStats stats_;
  std::vector<float> excess_;  // compress scratch
  std::vector<int32_t> order_, scratch_;
  std::vector<uint8_t> codes_;
};

}  // namespace cvq
