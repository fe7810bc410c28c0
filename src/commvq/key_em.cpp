#include "commvq/key_em.h"

#include <cblas.h>

#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/stopwatch.h"
#include "core/thread_pool.h"
#include "kernels/cpu/commvq_assign.h"

namespace cvq {
namespace {

constexpr int kSub = KeyCodebook::kSubCodes;
constexpr int kCodes = KeyCodebook::kCodewords;
constexpr int64_t kBlock = 256;  // tokens per GEMM inside a chunk

// The build's baseline is plain x86-64; this inner loop is worth the wider registers.
__attribute__((target_clones("avx512f", "avx2", "default"))) void axpy(float a, const float* x, float* y, int n) {
  for (int k = 0; k < n; ++k) y[k] += a * x[k];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) int64_t count_nonzero(const float* x, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += x[i] != 0.0f;
  return c;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// k distinct indices of [0, n) (all of them, in order, if k >= n), deterministic for a seed.
std::vector<int64_t> sample_indices(int64_t n, int64_t k, uint64_t seed) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  if (k >= n) return idx;
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < k; ++i) {
    std::uniform_int_distribution<int64_t> pick(i, n - 1);
    std::swap(idx[i], idx[pick(rng)]);
  }
  idx.resize(static_cast<size_t>(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

// Tokens per chunk: chunks are the unit of the ordered reduction (thread-count independent sums);
// bounded in number so that their partial statistics stay small.
int64_t chunk_size(int64_t n, int64_t max_chunks) {
  return std::max<int64_t>(kBlock, (n + max_chunks - 1) / max_chunks);
}

}  // namespace

void key_marginal_sums(const float* wab, const float* x, int64_t m, int d, float* sab) {
  constexpr int kCols = 2 * kSub;
  const int64_t nnz = count_nonzero(wab, m * kCols);
  // An axpy per non-zero runs at a fraction of GEMM speed; below 1/8 density it is still less work.
  if (nnz * 8 > m * kCols) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kCols, d, static_cast<int>(m), 1.0f, wab, kCols, x, d, 0.0f,
                sab, d);
    return;
  }
  std::fill(sab, sab + static_cast<size_t>(kCols) * d, 0.0f);
  for (int64_t i = 0; i < m; ++i) {
    const float* wr = wab + i * kCols;
    const float* xi = x + i * d;
    for (int c0 = 0; c0 < kCols; c0 += 8) {  // skip all-zero groups of 8 by their bits (±0 alike)
      uint64_t bits[4];
      std::memcpy(bits, wr + c0, sizeof bits);
      if ((((bits[0] | bits[1] | bits[2] | bits[3]) << 1) & ~uint64_t{0x100000000}) == 0) continue;
      for (int c = c0; c < c0 + 8; ++c) {
        if (wr[c] != 0.0f) axpy(wr[c], xi, sab + static_cast<size_t>(c) * d, d);
      }
    }
  }
}

struct KeyStageEm::Centres {
  std::vector<float> cw;  // 4096 × d, pair-split
  std::vector<float> cn;  // 4096 squared norms
};

KeyStageEm::KeyStageEm(const float* x_pairs, const float* loss_weight, int64_t n, int head_dim, bool structured,
                       ThreadPool* pool)
    : data_(x_pairs), n_(n), d_(head_dim), structured_(structured), pool_(pool ? pool : &ThreadPool::global()) {
  if (n <= 0) throw Error("commvq key EM: no training vectors");
  if (head_dim <= 0 || head_dim % 2 != 0) throw Error("commvq key EM: bad head dim " + std::to_string(head_dim));
  xx_.resize(static_cast<size_t>(n));
  lw_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int k = 0; k < d_; ++k) s += static_cast<double>(data_[i * d_ + k]) * data_[i * d_ + k];
    xx_[i] = static_cast<float>(s);
    lw_[i] = (loss_weight ? loss_weight[i] : 1.0f) / static_cast<float>(d_);
  }
  const int h = d_ / 2;
  if (structured_) {
    x_.assign(static_cast<size_t>(kSub) * h, 0.0f);
    y_.assign(static_cast<size_t>(kSub) * h, 0.0f);
  } else {
    centroids_.assign(static_cast<size_t>(kCodes) * d_, 0.0f);
  }
}

void KeyStageEm::set_params(const std::vector<float>& x, const std::vector<float>& y) {
  if (!structured_ || x.size() != x_.size() || y.size() != y_.size()) throw Error("commvq key EM: bad parameters");
  x_ = x;
  y_ = y;
}

void KeyStageEm::set_centroids(const std::vector<float>& c) {
  if (structured_ || c.size() != centroids_.size()) throw Error("commvq key EM: bad centroids");
  centroids_ = c;
}

void KeyStageEm::append_to(KeyCodebook& cb) const {
  if (structured_) {
    cb.add_stage(x_, y_);
  } else {
    cb.add_unstructured_stage(centroids_);
  }
}

double KeyStageEm::run(const float* x, const float* xx, const float* lw, int64_t n, double tau_d, double cutoff_d,
                       EStep mode, bool soft, const Centres* centres) {
  const int d = d_;
  const float tau = static_cast<float>(tau_d);
  const float cutoff = static_cast<float>(cutoff_d);
  // Unstructured codebooks need the full weighted sums (4096 × d): dense weights and a GEMM.
  const bool dense = mode == EStep::BruteReference || !structured_;
  const bool brute = mode != EStep::Factorized || !structured_ || centres != nullptr;

  KeyCodebook one(d, RopeLayout::HalfSplit, true);
  Centres own;
  if (!brute) {
    one.add_stage(x_, y_);
  } else if (!centres) {
    if (structured_) {
      one.add_stage(x_, y_);
      own.cw = one.explicit_codewords(0);
    } else {
      own.cw = centroids_;
    }
    own.cn.resize(kCodes);
    for (int c = 0; c < kCodes; ++c) {
      double s = 0.0;
      for (int k = 0; k < d; ++k) s += static_cast<double>(own.cw[c * d + k]) * own.cw[c * d + k];
      own.cn[c] = static_cast<float>(s);
    }
    centres = &own;
  }

  const int64_t C = chunk_size(n, dense ? 32 : 256);
  const int64_t n_chunks = (n + C - 1) / C;
  struct Slot {
    std::vector<float> counts, sab, sums;
    double loss = 0.0;
  };
  std::vector<Slot> slots(static_cast<size_t>(n_chunks));
  struct Scratch {
    std::vector<float> ab, wab, wd, s;  // wab: per token wA (64) then wB (64)
    std::unique_ptr<CommvqSoftScratch> soft;
  };
  std::vector<Scratch> scratch(static_cast<size_t>(pool_->size()));

  auto work = [&](int64_t c0, int64_t c1, int tid) {
    Scratch& w = scratch[static_cast<size_t>(tid)];
    if (!w.soft) {
      w.soft = std::make_unique<CommvqSoftScratch>();
      w.ab.resize(static_cast<size_t>(kBlock) * (brute ? kCodes : 2 * kSub));
      w.wab.resize(static_cast<size_t>(C) * 2 * kSub);
      if (dense && soft) {
        w.wd.resize(static_cast<size_t>(kBlock) * kCodes);
        w.s.resize(static_cast<size_t>(kCodes) * d);
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      Slot& slot = slots[static_cast<size_t>(c)];
      const int64_t t0 = c * C;
      const int64_t m = std::min(C, n - t0);
      if (soft) {
        slot.counts.assign(kCodes, 0.0f);
        std::fill(w.wab.begin(), w.wab.begin() + m * 2 * kSub, 0.0f);
        if (dense) std::fill(w.s.begin(), w.s.end(), 0.0f);
      }
      double loss = 0.0;
      for (int64_t b0 = 0; b0 < m; b0 += kBlock) {
        const int64_t mb = std::min(kBlock, m - b0);
        const float* xb = x + (t0 + b0) * d;
        if (!brute) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(mb), 2 * kSub, d, 1.0f, xb, d,
                      one.proj(0), 2 * kSub, 0.0f, w.ab.data(), 2 * kSub);
        } else {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(mb), kCodes, d, -2.0f, xb, d,
                      centres->cw.data(), d, 0.0f, w.ab.data(), kCodes);
        }
        for (int64_t i = 0; i < mb; ++i) {
          const int64_t t = t0 + b0 + i;
          const int64_t li = b0 + i;
          float* wa_row = w.wab.data() + li * 2 * kSub;
          float* wb_row = wa_row + kSub;
          CommvqArgmin am;
          if (!brute) {
            const float* pq = w.ab.data() + i * 2 * kSub;
            if (soft) {
              am = commvq_pair_soft_assign(one.gfull(0), pq, pq + kSub, xx[t], tau, cutoff, slot.counts.data(), wa_row,
                                           wb_row, *w.soft, one.gbound(0));
            } else {
              am = commvq_pair_sum_argmin(one.gfull(0), pq, pq + kSub, xx[t], nullptr, one.gbound(0));
            }
          } else {
            float* r = w.ab.data() + i * kCodes;
            const float xt = xx[t];
            const float* cn = centres->cn.data();
            for (int k = 0; k < kCodes; ++k) r[k] += cn[k] + xt;
            am = commvq_argmin4096(r);
            if (soft) {
              commvq_soft_accumulate(r, am.value, tau, dense ? std::numeric_limits<float>::infinity() : cutoff,
                                     slot.counts.data(), wa_row, wb_row, dense ? w.wd.data() + i * kCodes : nullptr,
                                     *w.soft);
            }
          }
          loss += static_cast<double>(lw[t]) * std::max(am.value, 0.0f);
        }
        if (soft && dense) {  // S += Wᵀ X over this block (4096 × d)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kCodes, d, static_cast<int>(mb), 1.0f, w.wd.data(),
                      kCodes, xb, d, 1.0f, w.s.data(), d);
        }
      }
      slot.loss = loss;
      if (!soft) continue;
      if (!structured_) {
        slot.sums = w.s;
        continue;
      }
      slot.sab.assign(static_cast<size_t>(2 * kSub) * d, 0.0f);  // [SA; SB]
      if (dense) {  // marginalize the full weighted sums, as the reference's M step does implicitly
        for (int a = 0; a < kSub; ++a) {
          for (int b = 0; b < kSub; ++b) {
            const float* sr = w.s.data() + static_cast<size_t>(a * kSub + b) * d;
            float* pa = slot.sab.data() + static_cast<size_t>(a) * d;
            float* pb = slot.sab.data() + static_cast<size_t>(kSub + b) * d;
            for (int k = 0; k < d; ++k) {
              pa[k] += sr[k];
              pb[k] += sr[k];
            }
          }
        }
      } else {  // docs/METHOD.md §4: Σ_i wA_i x_i and Σ_i wB_i x_i — the two 64×m by m×d products as one 128×m by m×d
        key_marginal_sums(w.wab.data(), x + t0 * d, m, d, slot.sab.data());
      }
    }
  };
  pool_->parallel_for(n_chunks, work);

  double loss = 0.0;
  for (const Slot& s : slots) loss += s.loss;
  if (soft) {
    counts_.assign(kCodes, 0.0);
    if (structured_) {
      sa_.assign(static_cast<size_t>(kSub) * d, 0.0);
      sb_.assign(static_cast<size_t>(kSub) * d, 0.0);
    } else {
      sums_.assign(static_cast<size_t>(kCodes) * d, 0.0);
    }
    for (const Slot& s : slots) {
      for (int c = 0; c < kCodes; ++c) counts_[c] += s.counts[c];
      if (structured_) {
        for (size_t k = 0; k < sa_.size(); ++k) {
          sa_[k] += s.sab[k];
          sb_[k] += s.sab[sa_.size() + k];
        }
      } else {
        for (size_t k = 0; k < sums_.size(); ++k) sums_[k] += s.sums[k];
      }
    }
    have_stats_ = true;
  }
  return loss / static_cast<double>(n);
}

double KeyStageEm::e_step(double tau, double cutoff, EStep mode) {
  if (!(tau > 0)) throw Error("commvq key EM: temperature must be positive");
  return run(data_, xx_.data(), lw_.data(), n_, tau, cutoff, mode, true, nullptr);
}

double KeyStageEm::hard_loss() {
  return run(data_, xx_.data(), lw_.data(), n_, 1.0, 0.0, EStep::Factorized, false, nullptr);
}

void KeyStageEm::init_random(uint64_t seed, int64_t init_tokens, double init_tau, double cutoff, double ridge) {
  // Centres: 4096 random data points (distinct when there are enough).
  std::mt19937_64 rng(splitmix64(seed));
  std::vector<int64_t> pick;
  if (n_ >= kCodes) {
    pick = sample_indices(n_, kCodes, splitmix64(seed ^ 0x1234567ull));
    std::shuffle(pick.begin(), pick.end(), rng);
  } else {
    std::uniform_int_distribution<int64_t> u(0, n_ - 1);
    for (int c = 0; c < kCodes; ++c) pick.push_back(u(rng));
  }
  Centres cen;
  cen.cw.resize(static_cast<size_t>(kCodes) * d_);
  cen.cn.resize(kCodes);
  for (int c = 0; c < kCodes; ++c) {
    std::memcpy(cen.cw.data() + static_cast<size_t>(c) * d_, data_ + pick[c] * d_, sizeof(float) * d_);
    cen.cn[c] = xx_[pick[c]];
  }
  // One E step on a random subset of the tokens, at τ = init_tau, against those centres.
  const std::vector<int64_t> sub = sample_indices(n_, init_tokens > 0 ? init_tokens : n_, splitmix64(seed + 7));
  const int64_t m = static_cast<int64_t>(sub.size());
  std::vector<float> xs(static_cast<size_t>(m) * d_), xxs(static_cast<size_t>(m)), lws(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    std::memcpy(xs.data() + i * d_, data_ + sub[i] * d_, sizeof(float) * d_);
    xxs[i] = xx_[sub[i]];
    lws[i] = lw_[sub[i]];
  }
  if (!structured_) centroids_ = cen.cw;
  run(xs.data(), xxs.data(), lws.data(), m, init_tau, cutoff, EStep::BruteDistances, true, &cen);
  m_step(ridge);
}

void key_m_step_system(const std::vector<double>& counts, const std::vector<double>& sa_all,
                       const std::vector<double>& sb_all, const std::vector<float>& x, const std::vector<float>& y,
                       int d, double ridge, std::vector<double>* h_out, std::vector<double>* g_out) {
  const int h = d / 2;
  if (counts.size() != static_cast<size_t>(kCodes) || sa_all.size() != static_cast<size_t>(kSub) * d ||
      sb_all.size() != sa_all.size() || x.size() != static_cast<size_t>(kSub) * h || y.size() != x.size())
    throw Error("commvq key EM: M-step statistics have the wrong shape");
  // Weighted least squares for all pairs at once: (TᵀWT) θ_f = Tᵀ W m_f with θ_f = (X[·,f], Y[·,f]).
  // TᵀWT = [[D, K], [Kᵀ, D]], D = diag(N_A + N_B) (row and column marginals of N_c),
  // K[s,t] = N[t,s] − N[s,t]; the right-hand side needs only the marginal weighted sums (docs/METHOD.md §4):
  //   g_X[s,f] = SA[s].x_f + SB[s].y_f,  g_Y[s,f] = SA[s].y_f − SB[s].x_f.
  std::vector<double> nc(kCodes);
  for (int c = 0; c < kCodes; ++c) nc[c] = counts[c] + 1e-8;
  std::vector<double> na(kSub, 0.0), nb(kSub, 0.0);
  for (int a = 0; a < kSub; ++a) {
    for (int b = 0; b < kSub; ++b) {
      na[a] += nc[a * kSub + b];
      nb[b] += nc[a * kSub + b];
    }
  }
  Eigen::MatrixXd H = Eigen::MatrixXd::Zero(2 * kSub, 2 * kSub);
  for (int s = 0; s < kSub; ++s) {
    H(s, s) = na[s] + nb[s];
    H(kSub + s, kSub + s) = na[s] + nb[s];
    for (int t = 0; t < kSub; ++t) {
      const double v = nc[t * kSub + s] - nc[s * kSub + t];
      H(s, kSub + t) = v;
      H(kSub + t, s) = v;
    }
  }
  // Ridge toward the current parameters: sub-codes no centre uses keep their value instead of
  // making the system singular.
  const double lam = ridge * H.trace() / (2.0 * kSub) + 1e-30;
  H.diagonal().array() += lam;
  Eigen::MatrixXd g(2 * kSub, h);
  for (int s = 0; s < kSub; ++s) {
    const double* sa = sa_all.data() + static_cast<size_t>(s) * d;
    const double* sb = sb_all.data() + static_cast<size_t>(s) * d;
    for (int f = 0; f < h; ++f) {
      g(s, f) = sa[f] + sb[h + f] + lam * x[s * h + f];
      g(kSub + s, f) = sa[h + f] - sb[f] + lam * y[s * h + f];
    }
  }
  h_out->assign(static_cast<size_t>(4 * kSub * kSub), 0.0);
  g_out->assign(static_cast<size_t>(2 * kSub) * h, 0.0);
  for (int r = 0; r < 2 * kSub; ++r) {
    for (int c = 0; c < 2 * kSub; ++c) (*h_out)[static_cast<size_t>(r) * 2 * kSub + c] = H(r, c);
    for (int f = 0; f < h; ++f) (*g_out)[static_cast<size_t>(r) * h + f] = g(r, f);
  }
}

void KeyStageEm::m_step(double ridge) {
  if (!have_stats_) throw Error("commvq key EM: m_step before an E step");
  const int d = d_;
  const int h = d / 2;
  if (!structured_) {
    for (int c = 0; c < kCodes; ++c) {
      if (counts_[c] < 1e-6) continue;  // an unused centroid keeps its place
      for (int k = 0; k < d; ++k)
        centroids_[static_cast<size_t>(c) * d + k] =
            static_cast<float>(sums_[static_cast<size_t>(c) * d + k] / counts_[c]);
    }
    return;
  }
  std::vector<double> hv, gv;
  key_m_step_system(counts_, sa_, sb_, x_, y_, d, ridge, &hv, &gv);
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> H(hv.data(), 2 * kSub,
                                                                                                   2 * kSub);
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> g(gv.data(), 2 * kSub,
                                                                                                   h);
  const Eigen::MatrixXd theta = H.ldlt().solve(g);
  for (int s = 0; s < kSub; ++s) {
    for (int f = 0; f < h; ++f) {
      const double xv = theta(s, f), yv = theta(kSub + s, f);
      if (!std::isfinite(xv) || !std::isfinite(yv)) throw Error("commvq key EM: M step produced a non-finite value");
      x_[s * h + f] = static_cast<float>(xv);
      y_[s * h + f] = static_cast<float>(yv);
    }
  }
}

// ---------------------------------------------------------------------------------------------------

KeyCodebook train_key_head(const float* u_head, int64_t ld, const float* norms, int64_t n, int head_dim, int stages,
                           RopeLayout layout, const KeyEmOptions& opts, int head_index, KeyEmHeadReport* report) {
  const auto t_start = std::chrono::steady_clock::now();
  if (n <= 0) throw Error("commvq key EM: no training tokens");
  if (stages <= 0) throw Error("commvq key EM: stage count must be positive");
  if (opts.iterations <= 0) throw Error("commvq key EM: iterations must be positive");
  const int d = head_dim;
  std::unique_ptr<ThreadPool> own_pool;
  if (opts.threads > 0) own_pool = std::make_unique<ThreadPool>(opts.threads);
  ThreadPool* pool = own_pool ? own_pool.get() : &ThreadPool::global();

  std::vector<float> x(static_cast<size_t>(n) * d);
  for (int64_t t = 0; t < n; ++t) to_pair_split(u_head + t * ld, 1, d, layout, x.data() + t * d);
  std::vector<float> lw(static_cast<size_t>(n), 1.0f);
  if (norms) {
    for (int64_t t = 0; t < n; ++t) lw[t] = norms[t] * norms[t];
  }
  auto residual_mse = [&]() {
    double s = 0.0;
    for (int64_t t = 0; t < n; ++t) {
      double e = 0.0;
      for (int k = 0; k < d; ++k) e += static_cast<double>(x[t * d + k]) * x[t * d + k];
      s += lw[t] * e;
    }
    return s / (static_cast<double>(n) * d);
  };
  KeyEmHeadReport rep;
  rep.initial_mse = residual_mse();

  KeyCodebook cb(d, layout, !opts.unstructured);
  double scale = 1.0;
  std::vector<float> res(x.size());
  for (int j = 0; j < stages; ++j) {
    const auto t_stage = std::chrono::steady_clock::now();
    KeyStageEm em(x.data(), lw.data(), n, d, !opts.unstructured, pool);
    const uint64_t seed = splitmix64(opts.seed ^ splitmix64(static_cast<uint64_t>(head_index) * 1000003ull + j));
    em.init_random(seed, opts.init_tokens, opts.init_tau, opts.softmax_cutoff, opts.ridge);
    double best = std::numeric_limits<double>::infinity();
    std::vector<float> best_x, best_y, best_c;
    int its = 0;
    const int K = opts.iterations;
    for (int k = 0; k < K; ++k) {
      const double frac = K > 1 ? static_cast<double>(k) / (K - 1) : 0.0;
      const double tau = scale * opts.tau0 * std::pow(opts.tau1 / opts.tau0, frac);
      const double loss = em.e_step(tau, opts.softmax_cutoff);
      ++its;
      const bool improved = loss < best;
      if (improved) {
        best = loss;
        if (opts.unstructured) {
          best_c = em.centroids();
        } else {
          best_x = em.x();
          best_y = em.y();
        }
      }
      if (opts.on_iteration) opts.on_iteration({head_index, j, k, tau, loss, best});
      if (!improved && loss - best < opts.early_stop_tol * best) break;
      if (k + 1 < K) em.m_step(opts.ridge);  // the last M step would never be evaluated
    }
    if (opts.unstructured) {
      em.set_centroids(best_c);
    } else {
      em.set_params(best_x, best_y);
    }
    KeyCodebook stage_cb(d, layout, !opts.unstructured);
    em.append_to(stage_cb);
    em.append_to(cb);
    // Residuals for the next stage: hard assignment with the kept parameters.
    constexpr int64_t kChunk = 1024;
    pool->parallel_for((n + kChunk - 1) / kChunk, [&](int64_t c0, int64_t c1, int) {
      std::vector<uint16_t> codes(static_cast<size_t>(kChunk));
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t t0 = c * kChunk;
        const int64_t m = std::min(kChunk, n - t0);
        stage_cb.encode_pairs(x.data() + t0 * d, m, codes.data(), 1, res.data() + t0 * d, false);
      }
    });
    x.swap(res);
    KeyEmStageReport sr;
    sr.iterations = its;
    sr.best_loss = best;
    sr.residual_mse = residual_mse();
    sr.seconds = seconds_since(t_stage);
    rep.stages.push_back(sr);
    if (opts.tau_shrink_every > 0 && j % opts.tau_shrink_every == 0) scale /= opts.tau_shrink_factor;
  }
  rep.seconds = seconds_since(t_start);
  if (report) *report = rep;
  return cb;
}

KeyLayerCodebook train_key_layer(const float* k_pre_rope, int64_t n, int n_kv, int head_dim, int stages,
                                 RopeLayout layout, const KeyEmOptions& opts, KeyEmLayerReport* report) {
  const auto t_start = std::chrono::steady_clock::now();
  if (n_kv <= 0) throw Error("commvq key EM: KV head count must be positive");
  const int D = n_kv * head_dim;
  const int64_t m = opts.max_tokens > 0 ? std::min(n, opts.max_tokens) : n;
  const std::vector<int64_t> sub = sample_indices(n, m, splitmix64(opts.seed ^ 0xabcdefull));
  std::vector<float> k(static_cast<size_t>(m) * D);
  for (int64_t i = 0; i < m; ++i) std::memcpy(k.data() + i * D, k_pre_rope + sub[i] * D, sizeof(float) * D);
  std::vector<float> norms(static_cast<size_t>(m));
  key_norms(k.data(), m, D, norms.data(), k.data());  // in place: k becomes u

  KeyLayerCodebook layer;
  layer.n_kv = n_kv;
  layer.head_dim = head_dim;
  KeyEmLayerReport rep;
  rep.tokens = m;
  for (int h = 0; h < n_kv; ++h) {
    KeyEmHeadReport hr;
    layer.heads.push_back(
        train_key_head(k.data() + h * head_dim, D, norms.data(), m, head_dim, stages, layout, opts, h, &hr));
    rep.heads.push_back(std::move(hr));
  }
  rep.seconds = seconds_since(t_start);
  if (report) *report = rep;
  return layer;
}

}  // namespace cvq
