#pragma once
// CommVQ keys: the RoPE-commutative residual codebook of one (layer, KV head) (docs/METHOD.md §3).
//
// Stage j has parameters X_j, Y_j ∈ R^{64 × d/2}. Codeword c = 64·A + B is, for every RoPE pair f,
//   C_j[c]_f = (X_j[A,f] − Y_j[B,f],  Y_j[A,f] + X_j[B,f])
// so every codeword is a sum of 2×2 blocks M(a,b) = [[a,−b],[b,a]], which commute with RoPE.
// A head vector is encoded greedily stage by stage (residual VQ) with the factorized distances of docs/METHOD.md §4:
// 2 products with a d×128 matrix and 4096 adds per stage, never the 4096×d codeword matrix.
//
// Vectors come in the head layout of the model (RopeLayout: Adjacent pairs (2f, 2f+1), HalfSplit
// pairs (f, f+d/2)). Internally and in the kernels they are "pair-split": (x_0..x_{h-1}, y_0..y_{h-1}).
//
// Normalization is per layer (docs/METHOD.md §3.1): n_t = ||k_t|| over all n_kv·d dims, u_t = k_t / n_t; each head
// encodes its d-slice of u_t. KeyLayerCodebook does that for the n_kv heads of a layer.
//
// An "unstructured" codebook (ablation: plain residual VQ with 4096 free centroids per stage, same
// code size) is supported for encode/decode; attention on codes (docs/METHOD.md §6.1) needs the structured one.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/commvq_assign.h"
#include "kernels/cpu/rope.h"

namespace cvq {

class SafetensorsReader;
class SafetensorsWriter;

// Stages for a bit budget: round(bits · d / 12) (d=64: 11 for 2-bit, 5 for 1-bit; d=128: 21 / 11).
int commvq_key_stages(double bits, int head_dim);

// Head layout <-> pair-split, n vectors of d floats (in and out must not overlap).
void to_pair_split(const float* head, int64_t n, int head_dim, RopeLayout layout, float* pairs);
void from_pair_split(const float* pairs, int64_t n, int head_dim, RopeLayout layout, float* head);

// cos/sin table for the score kernels: per position d floats, cos(p·ω_f) for f < d/2 then sin(p·ω_f).
void rope_cos_sin_table(const Rope& rope, const int32_t* positions, int64_t n, float* out);
void rope_cos_sin_table(const Rope& rope, int32_t first_position, int64_t n, float* out);

// The same table for a run of consecutive positions p0..p0+n−1 (a cache block), without per-token
// sin/cos: cos/sin(p0·ω + t·ω) by angle addition from the stored offsets t = 0..max_block−1. A
// whole-context table would be as large as fp32 keys and be re-read by every head of every layer;
// a block's table (n·d floats) is built once per block and stays in L1/L2. Agrees with
// rope_cos_sin_table to ~1e-7.
class RopeBlockTable {
 public:
  RopeBlockTable() = default;
  explicit RopeBlockTable(const Rope& rope, int max_block = 128);
  int max_block() const { return max_block_; }
  void fill(int32_t first_position, int n, float* out) const;
  // The same in two steps: base (d floats, cos/sin of the first position — a cache can keep it per
  // block) and the table from it (no sin/cos calls).
  void base(int32_t first_position, float* base_out) const;
  void fill_from_base(const float* base, int n, float* out) const;

 private:
  Rope rope_;
  int max_block_ = 0;
  std::vector<float> offsets_;  // max_block × d
};

class KeyCodebook {
 public:
  static constexpr int kSubCodes = 64;
  static constexpr int kCodewords = 4096;

  KeyCodebook() = default;
  KeyCodebook(int head_dim, RopeLayout layout, bool structured = true);

  int head_dim() const { return d_; }
  int half() const { return d_ / 2; }
  RopeLayout layout() const { return layout_; }
  bool structured() const { return structured_; }
  int stages() const { return n_stages_; }

  // Appends a structured stage; x, y: 64 × d/2 (row s = sub-code s, column f = pair f).
  void add_stage(const std::vector<float>& x, const std::vector<float>& y);
  // Appends an unstructured stage: 4096 × d centroids, pair-split.
  void add_unstructured_stage(const std::vector<float>& centroids_pairs);
  void truncate(int stages);  // keep the first `stages` stages

  // Structured parameters: all stages contiguous, each X (64×h) then Y (64×h) — the `xy` of
  // kernels/cpu/commvq_scores.h.
  const float* params() const { return xy_.data(); }
  const float* stage_x(int j) const { return xy_.data() + static_cast<size_t>(j) * 2 * kSubCodes * half(); }
  const float* stage_y(int j) const { return stage_x(j) + kSubCodes * half(); }
  // Unstructured centroids of stage j (4096 × d, pair-split).
  const float* stage_centroids(int j) const { return centroids_.data() + static_cast<size_t>(j) * kCodewords * d_; }
  const float* centroid_norms(int j) const { return cnorm_.data() + static_cast<size_t>(j) * kCodewords; }

  // Codeword c of stage j, d floats in head layout (or pair-split).
  void codeword(int j, int c, float* out_head) const;
  void codeword_pairs(int j, int c, float* out_pairs) const;
  // All 4096 codewords of stage j, pair-split (4096 × d) — brute force, for tests and benchmarks.
  std::vector<float> explicit_codewords(int j) const;

  // Greedy residual encoding of normalized head vectors u (head layout): R codes per vector.
  void encode(const float* u_head, uint16_t* codes) const;
  // n vectors at stride ld (floats), codes at code_stride (uint16) per vector. Threaded by default
  // (ThreadPool::global(), chunks of 64 vectors; serial when called from inside a parallel region).
  void encode_batch(const float* u_head, int64_t n, int64_t ld, uint16_t* codes, int64_t code_stride,
                    bool threaded = true) const;
  // The same on pair-split input; `residual` (n × d, may be null) receives what is left after all stages.
  void encode_pairs(const float* u_pairs, int64_t n, uint16_t* codes, int64_t code_stride, float* residual,
                    bool threaded = true) const;
  // Greedy encoding with explicit codewords and directly computed distances (tests only: slow).
  void encode_bruteforce(const float* u_head, uint16_t* codes) const;

  // Σ_j C_j[codes_j] in head layout (the normalized key; multiply by the token's norm).
  void decode(const uint16_t* codes, float* out_head) const;
  void decode_batch(const uint16_t* codes, int64_t code_stride, int64_t n, float* out_head, int64_t ld) const;
  void decode_pairs(const uint16_t* codes, float* out_pairs) const;

  // Per-stage structures of the factorized distance (stage j): gfull[c] = ||C_j[c]||² (4096) and
  // the d×128 matrix P with (x·P)[s] = −2α_s, (x·P)[64+s] = −2β_s for a pair-split x.
  const float* gfull(int j) const { return gfull_.data() + static_cast<size_t>(j) * kCodewords; }
  const float* proj(int j) const { return proj_.data() + static_cast<size_t>(j) * d_ * 2 * kSubCodes; }
  // Row bounds of gfull(j) for pruning in the assignment kernels (commvq_row_bounds).
  const float* gbound(int j) const { return gbound_.data() + static_cast<size_t>(j) * kCommvqBoundFloats; }

  // Tensors "<prefix>.xy" ([R, 2, 64, d/2] f32) or "<prefix>.centroids" ([R, 4096, d] f32, pair-split).
  void write_tensors(SafetensorsWriter& w, const std::string& prefix) const;
  static KeyCodebook read_tensors(const SafetensorsReader& r, const std::string& prefix, int head_dim,
                                  RopeLayout layout);

  // Bytes of parameters (the fixed per-model cost).
  size_t param_bytes() const;

 private:
  void build_stage_cache(int j);
  void check_stage(int j) const;

  int d_ = 0;
  RopeLayout layout_ = RopeLayout::Adjacent;
  bool structured_ = true;
  int n_stages_ = 0;
  std::vector<float> xy_;         // structured: R × [X 64×h, Y 64×h]
  std::vector<float> gfull_;      // structured: R × 4096
  std::vector<float> gbound_;     // structured: R × kCommvqBoundFloats
  std::vector<float> proj_;       // structured: R × d × 128
  std::vector<float> centroids_;  // unstructured: R × 4096 × d (pair-split)
  std::vector<float> cnorm_;      // unstructured: R × 4096 squared norms
};

// Per-token key norms over a layer's kv_dim dims: norms[t] = ||k_t||; u (nullable) = k_t / norms[t]
// (0 for a zero key). k, u: n × kv_dim.
void key_norms(const float* k, int64_t n, int kv_dim, float* norms, float* u);

// The n_kv head codebooks of one layer.
//
// Optional key centering (beyond the paper; `train --key-center`): a per-channel mean μ of the
// layer's pre-RoPE calibration keys is subtracted before the norm and added back after decoding,
// k̂ = μ + n_t · Σ_j C_j[code]. Models with a large key bias (Qwen2's K bias) otherwise spend the
// norm and the first stage on a direction every token shares. μ costs kv_dim floats per layer and no
// bits per token; attention on codes adds q·RoPE_m(μ) exactly (commvq_cache.cpp). Empty = none.
struct KeyLayerCodebook {
  int n_kv = 0;
  int head_dim = 0;
  std::vector<KeyCodebook> heads;
  std::vector<float> mean;  // [kv_dim] or empty

  int stages() const { return heads.empty() ? 0 : heads[0].stages(); }
  int kv_dim() const { return n_kv * head_dim; }
  bool centered() const { return !mean.empty(); }
  // Pre-RoPE keys k (n × kv_dim) → norms (n) and codes (n × n_kv × R, token-major, then head).
  void encode(const float* k_pre_rope, int64_t n, float* norms, uint16_t* codes) const;
  // codes/norms → pre-RoPE keys (n × kv_dim): head h = μ_h + norms[t] · Σ_j C_j[code].
  void decode(const uint16_t* codes, const float* norms, int64_t n, float* k_out) const;
};

// Per-channel mean of n keys (n × kv_dim), accumulated in double.
std::vector<float> key_channel_mean(const float* k, int64_t n, int kv_dim);
// out = k − mean, row by row (n × mean.size(); out may be k).
void subtract_key_mean(const float* k, int64_t n, const std::vector<float>& mean, float* out);

}  // namespace cvq
