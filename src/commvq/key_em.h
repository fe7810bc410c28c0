#pragma once
// EM training of CommVQ key codebooks (docs/METHOD.md §3.5), per (layer, KV head, stage), with the
// factorized E and M steps of docs/METHOD.md §4: per iteration two N×d by d×128 products for the distances, 4096
// adds per token, a softmax over the few codewords within `softmax_cutoff`·τ of the nearest, two
// 64×N by N×d products for the marginal sums, and one 128×128 LDLT for all d/2 pairs. Nothing of
// size N×4096×d is formed.
//
// Determinism: every random choice comes from the seed; sums are formed per fixed-size token chunk
// and reduced in chunk order, so results do not depend on the thread count.
#include <cstdint>
#include <functional>
#include <vector>

#include "commvq/key_codebook.h"

namespace cvq {

class ThreadPool;

struct KeyEmProgress {
  int head = 0;  // KV head (as passed to train_key_head)
  int stage = 0;
  int iteration = 0;  // 0-based; `loss` is the hard-assignment MSE of the parameters entering it
  double tau = 0.0;
  double loss = 0.0;
  double best_loss = 0.0;
};

// Defaults are sized for the default model (30 layers × 3 KV heads, d=64, R=11 at 2 bits): about
// 2.8 s of one core per (layer, head) on Zen 4, ~4.2 min of CPU for all 90; on real SmolLM2 keys the
// held-out key error is within ~1% of a 100-iteration run (3.3× the time).
struct KeyEmOptions {
  int iterations = 24;         // K per stage (reference: 100)
  int64_t max_tokens = 16384;  // tokens per layer used for training (reference: 2^20), random subset
  int64_t init_tokens = 1024;  // tokens in the initial τ=init_tau E step against random data points
  uint64_t seed = 1;
  int threads = 0;     // 0: ThreadPool::global(); otherwise a private pool of this size
  double tau0 = 1e-3;  // τ_k = S·τ0·(τ1/τ0)^(k/(K−1))
  double tau1 = 1e-5;
  int tau_shrink_every = 4;  // S /= tau_shrink_factor after stages 0, 4, 8, ... (reference)
  double tau_shrink_factor = 10.0;
  double init_tau = 1.0;
  double ridge = 1e-6;           // relative to the mean diagonal of TᵀWT; pulls unused sub-codes to their old value
  double early_stop_tol = 1e-5;  // stop when a loss is no better than the best but within tol·best of it
  double softmax_cutoff = 30.0;  // weights below e^−cutoff of the largest are dropped (exact to float rounding)
  bool unstructured = false;     // ablation: plain residual VQ, 4096 free centroids per stage (brute-force E step)
  std::function<void(const KeyEmProgress&)> on_iteration;
};

struct KeyEmStageReport {
  int iterations = 0;         // E steps run
  double best_loss = 0.0;     // hard-assignment MSE (de-normalized, per element) of the kept parameters
  double residual_mse = 0.0;  // MSE of the residual after this stage (= best_loss)
  double seconds = 0.0;
};
struct KeyEmHeadReport {
  double initial_mse = 0.0;  // MSE of the data itself (the residual before stage 0)
  std::vector<KeyEmStageReport> stages;
  double seconds = 0.0;
};
struct KeyEmLayerReport {
  int64_t tokens = 0;
  std::vector<KeyEmHeadReport> heads;
  double seconds = 0.0;
};

// EM state of one stage over a fixed data set (pair-split vectors, not owned).
class KeyStageEm {
 public:
  enum class EStep {
    Factorized,      // docs/METHOD.md §4: this project's E step
    BruteDistances,  // distances from an N×4096 GEMM with explicit codewords, rest as Factorized
    BruteReference,  // as the reference code: N×4096 distance GEMM, dense softmax, 4096×N by N×d
                     // weighted-sum GEMM (benchmarks only)
  };

  // loss_weight[i] multiplies token i's squared error in the loss (norm_i² for de-normalized MSE);
  // null means 1. pool null: ThreadPool::global().
  KeyStageEm(const float* x_pairs, const float* loss_weight, int64_t n, int head_dim, bool structured,
             ThreadPool* pool = nullptr);

  // Centres = random data points (seeded), one E step at τ = init_tau on up to init_tokens random
  // tokens, one M step.
  void init_random(uint64_t seed, int64_t init_tokens, double init_tau, double cutoff, double ridge);
  void set_params(const std::vector<float>& x, const std::vector<float>& y);
  void set_centroids(const std::vector<float>& centroids_pairs);

  // Soft E step at temperature tau with the current parameters; returns their hard-assignment loss
  // Σ_i w_i·min_c ||x_i − C[c]||² / (n·d). Statistics are kept for m_step().
  double e_step(double tau, double cutoff, EStep mode = EStep::Factorized);
  // Hard-assignment loss only (no statistics).
  double hard_loss();
  void m_step(double ridge);

  const std::vector<float>& x() const { return x_; }
  const std::vector<float>& y() const { return y_; }
  const std::vector<float>& centroids() const { return centroids_; }
  // Statistics of the last E step: N_c (4096), Σ_i wA_i x_i and Σ_i wB_i x_i (64 × d, pair-split).
  const std::vector<double>& counts() const { return counts_; }
  const std::vector<double>& sum_a() const { return sa_; }
  const std::vector<double>& sum_b() const { return sb_; }
  // Appends the current parameters as a stage of cb.
  void append_to(KeyCodebook& cb) const;

 private:
  struct Centres;  // explicit codewords for the brute-force paths
  double run(const float* x, const float* xx, const float* lw, int64_t n, double tau, double cutoff, EStep mode,
             bool soft, const Centres* centres);

  const float* data_;
  std::vector<float> xx_;  // ||x_i||²
  std::vector<float> lw_;  // loss weights / d
  int64_t n_;
  int d_;
  bool structured_;
  ThreadPool* pool_;
  std::vector<float> x_, y_, centroids_;
  std::vector<double> counts_, sa_, sb_, sums_;
  bool have_stats_ = false;
};

// The M step's linear system for all d/2 pairs at once, (TᵀWT + λI)·θ_f = Tᵀ W m_f + λ·θ_old, from
// the E-step statistics (counts 4096, SA and SB 64 × d) and the current parameters x, y (64 × d/2):
// H (128 × 128) and g (128 × d/2), row-major, θ_f = (X[·,f], Y[·,f]). KeyStageEm::m_step solves it
// with Eigen LDLT, the CUDA EM (src/gpu/key_em_gpu.h) with cuBLAS.
// The M step's right-hand side from the marginals (docs/METHOD.md §4): sab (128 × d) = wabᵀ X for m tokens, wab
// m × 128 (per token wA then wB), X m × d. A few axpys per token when the marginals are sparse (as
// they are at the temperatures EM runs at), a GEMM otherwise; the same sums either way.
void key_marginal_sums(const float* wab, const float* x, int64_t m, int d, float* sab);

void key_m_step_system(const std::vector<double>& counts, const std::vector<double>& sa, const std::vector<double>& sb,
                       const std::vector<float>& x, const std::vector<float>& y, int head_dim, double ridge,
                       std::vector<double>* h_out, std::vector<double>* g_out);

// Trains the R-stage codebook of one KV head. u_head: n normalized head vectors (head layout) at
// stride ld; norms: the tokens' layer key norms (for the de-normalized loss; null = 1).
KeyCodebook train_key_head(const float* u_head, int64_t ld, const float* norms, int64_t n, int head_dim, int stages,
                           RopeLayout layout, const KeyEmOptions& opts, int head_index = 0,
                           KeyEmHeadReport* report = nullptr);

// Trains a layer's n_kv head codebooks from its pre-RoPE keys k (n × n_kv·head_dim): normalizes per
// token over the layer (docs/METHOD.md §3.1), keeps a random subset of max_tokens tokens, trains each head.
KeyLayerCodebook train_key_layer(const float* k_pre_rope, int64_t n, int n_kv, int head_dim, int stages,
                                 RopeLayout layout, const KeyEmOptions& opts, KeyEmLayerReport* report = nullptr);

}  // namespace cvq
