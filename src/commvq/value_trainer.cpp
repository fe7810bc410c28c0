#include "commvq/value_trainer.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "commvq/value_loss.h"
#include "commvq/value_refine.h"
#include "commvq/value_rng.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/stopwatch.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"

namespace cvq {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Evaluation

ValueEvalMetrics evaluate_value_codec(const ValueCodec& codec, const ValueLayerData& d, const Rope& rope,
                                      const ValueAttnProj* attn, const std::vector<int>& sequences) {
  const int D = d.dim();
  const auto starts = value_sequence_starts(d);
  const bool use_attn = attn && !d.queries.empty() && !d.keys_pre_rope.empty();
  struct Sums {
    double err_v = 0, ref_v = 0, err_o = 0, ref_o = 0, err_h = 0, ref_h = 0;
    int64_t tokens = 0;
  };
  std::vector<Sums> sums(sequences.size());
  ThreadPool::global().parallel_for(static_cast<int64_t>(sequences.size()), [&](int64_t b, int64_t e_, int) {
    for (int64_t si = b; si < e_; ++si) {
      Sums& s = sums[si];
      const int64_t s0 = starts[sequences[si]], s1 = starts[sequences[si] + 1];
      const int L = static_cast<int>(s1 - s0);
      const float* v = d.values.data() + s0 * D;
      std::vector<float> vh(static_cast<size_t>(L) * D), err(vh.size());
      codec.roundtrip(v, L, vh.data());
      for (size_t k = 0; k < vh.size(); ++k) {
        err[k] = vh[k] - v[k];
        s.err_v += static_cast<double>(err[k]) * err[k];
        s.ref_v += static_cast<double>(v[k]) * v[k];
      }
      s.tokens = L;
      if (!use_attn) continue;
      const int H = d.n_head, hd = d.head_dim, qd = d.q_dim(), group = d.n_head / d.n_head_kv, E = attn->n_embd;
      std::vector<float> delta(static_cast<size_t>(L) * qd), ref(delta.size());
      value_attention_blocks(d, rope, s0, s1, [&](int i0, int qb, int ctx, const float* P) {
        for (int h = 0; h < H; ++h) {
          const float* ph = P + static_cast<int64_t>(h) * qb * ctx;
          const int g = h / group;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, qb, hd, ctx, 1.0f, ph, ctx, err.data() + g * hd, D,
                      0.0f, delta.data() + static_cast<int64_t>(i0) * qd + h * hd, qd);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, qb, hd, ctx, 1.0f, ph, ctx, v + g * hd, D, 0.0f,
                      ref.data() + static_cast<int64_t>(i0) * qd + h * hd, qd);
        }
      });
      for (size_t k = 0; k < delta.size(); ++k) {
        s.err_h += static_cast<double>(delta[k]) * delta[k];
        s.ref_h += static_cast<double>(ref[k]) * ref[k];
      }
      std::vector<float> o(static_cast<size_t>(L) * E);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, E, qd, 1.0f, delta.data(), qd, attn->w_o, qd, 0.0f,
                  o.data(), E);
      for (float x : o) s.err_o += static_cast<double>(x) * x;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, E, qd, 1.0f, ref.data(), qd, attn->w_o, qd, 0.0f,
                  o.data(), E);
      for (float x : o) s.ref_o += static_cast<double>(x) * x;
    }
  });
  Sums t;
  for (const auto& s : sums) {
    t.err_v += s.err_v;
    t.ref_v += s.ref_v;
    t.err_o += s.err_o;
    t.ref_o += s.ref_o;
    t.err_h += s.err_h;
    t.ref_h += s.ref_h;
    t.tokens += s.tokens;
  }
  ValueEvalMetrics m;
  m.tokens = t.tokens;
  m.rel_mse_values = t.ref_v > 0 ? t.err_v / t.ref_v : 0.0;
  m.rel_mse_attn = t.ref_o > 0 ? t.err_o / t.ref_o : 0.0;
  m.rel_mse_attn_heads = t.ref_h > 0 ? t.err_h / t.ref_h : 0.0;
  return m;
}

// ---------------------------------------------------------------------------------------------
// Training

ValueCodec train_value_codec(const ValueLayerData& d, const Rope& rope, const ValueAttnProj* attn,
                             const ValueTrainOptions& o, ValueTrainReport* report) {
  const int D = d.dim();
  if (D <= 0 || static_cast<int64_t>(d.values.size()) != d.n_tokens * D || d.n_tokens <= 0) {
    throw Error("value trainer: values must be [n_tokens x kv_dim] with n_tokens > 0");
  }
  if (o.steps < 0 || o.batch < 1 || o.shards < 1)
    throw Error("value trainer: steps >= 0, batch >= 1 and shards >= 1 required");
  const bool use_attn = o.attention_loss && attn != nullptr;
  if (use_attn) {
    if (static_cast<int64_t>(d.queries.size()) != d.n_tokens * d.q_dim() ||
        static_cast<int64_t>(d.keys_pre_rope.size()) != d.n_tokens * D ||
        static_cast<int64_t>(d.positions.size()) != d.n_tokens) {
      throw Error("value trainer: the attention loss needs keys, queries and positions for every token");
    }
    if (attn->n_head != d.n_head || attn->n_head_kv != d.n_head_kv || attn->head_dim != d.head_dim) {
      throw Error("value trainer: o_proj geometry does not match the activations");
    }
  }
  // Evaluation reports the attention error whenever the data allows, also when training on values only.
  const bool has_attn_data = attn != nullptr && static_cast<int64_t>(d.queries.size()) == d.n_tokens * d.q_dim() &&
                             static_cast<int64_t>(d.keys_pre_rope.size()) == d.n_tokens * D &&
                             static_cast<int64_t>(d.positions.size()) == d.n_tokens;
  const ValueAttnProj* eval_attn = has_attn_data ? attn : nullptr;
  ValueTrainReport rep;
  rep.layer = d.layer;

  // Held-out sequences for evaluation: the last ones.
  const auto starts = value_sequence_starts(d);
  const int n_seq = static_cast<int>(starts.size()) - 1;
  std::vector<int> train_seqs, eval_seqs;
  if (n_seq >= 2) {
    int n_eval = std::max(1, static_cast<int>(std::lround(o.holdout * n_seq)));
    n_eval = std::min(n_eval, n_seq - 1);
    for (int s = 0; s < n_seq - n_eval; ++s) train_seqs.push_back(s);
    for (int s = n_seq - n_eval; s < n_seq; ++s) eval_seqs.push_back(s);
  } else {
    train_seqs = eval_seqs = {0};
  }
  if (o.max_train_tokens > 0) {
    std::vector<int> kept;
    int64_t acc = 0;
    for (int s : train_seqs) {
      if (!kept.empty() && acc >= o.max_train_tokens) break;
      kept.push_back(s);
      acc += starts[s + 1] - starts[s];
    }
    train_seqs = kept;
  }
  std::vector<int64_t> train_rows;
  for (int s : train_seqs)
    for (int64_t t = starts[s]; t < starts[s + 1]; ++t) train_rows.push_back(t);
  const int64_t n_train = static_cast<int64_t>(train_rows.size());
  rep.train_tokens = n_train;

  ValueCodec codec(D, o.bits);
  codec.init_random(o.seed);
  {
    std::vector<float> tv(static_cast<size_t>(n_train) * D);
    for (int64_t r = 0; r < n_train; ++r) std::copy_n(d.values.data() + train_rows[r] * D, D, tv.data() + r * D);
    codec.fit_scale(tv.data(), n_train);
  }
  std::vector<float> xbar(static_cast<size_t>(n_train) * D), rho(n_train);
  for (int64_t r = 0; r < n_train; ++r)
    codec.normalize(d.values.data() + train_rows[r] * D, xbar.data() + r * D, &rho[r]);

  const int H = d.n_head, HH = H * H;
  std::vector<float> gram;
  if (use_attn) {
    const auto t0 = Clock::now();
    gram.assign(static_cast<size_t>(d.n_tokens) * HH, 0.0f);
    value_attention_gram(d, rope, train_seqs, gram.data());
    rep.gram_seconds = seconds_since(t0);
  }
  {
    const auto t0 = Clock::now();
    rep.untrained = evaluate_value_codec(codec, d, rope, eval_attn, eval_seqs);
    rep.eval_seconds += seconds_since(t0);
  }

  // AdamW over the trainable tensors; minibatch split into fixed shards.
  ValueCodec m1 = value_codec_zeros_like(codec), m2 = value_codec_zeros_like(codec);
  std::vector<ValueCodec> grads(o.shards, value_codec_zeros_like(codec));
  auto params = value_trainable_params(codec);
  auto mom1 = value_trainable_params(m1), mom2 = value_trainable_params(m2);
  const int NL = codec.shape().n_logits();
  const int B = o.batch;
  std::vector<float> bv(static_cast<size_t>(B) * D), bx(bv.size()), brho(B),
      bgram(use_attn ? static_cast<size_t>(B) * HH : 0), noise(static_cast<size_t>(B) * NL);
  std::vector<ValueLossTerms> shard_loss(o.shards);
  ValueRng pick(splitmix64(o.seed + 0x51ed));
  const uint64_t noise_seed = splitmix64(o.seed + 0x9a3b);
  Progress prog(d.layer >= 0 ? "values layer " + std::to_string(d.layer) : std::string("values"), o.steps, "steps");
  const auto t_train = Clock::now();
  double curve_sum = 0;
  int curve_n = 0;
  const int curve_every = std::max(1, o.steps / std::max(1, o.curve_points));
  for (int step = 0; step < o.steps; ++step) {
    for (int r = 0; r < B; ++r) {
      const int64_t k = static_cast<int64_t>(pick.below(static_cast<uint64_t>(n_train)));
      const int64_t row = train_rows[k];
      std::copy_n(d.values.data() + row * D, D, bv.data() + static_cast<int64_t>(r) * D);
      std::copy_n(xbar.data() + k * D, D, bx.data() + static_cast<int64_t>(r) * D);
      brho[r] = rho[k];
      if (use_attn) std::copy_n(gram.data() + row * HH, HH, bgram.data() + static_cast<int64_t>(r) * HH);
    }
    ThreadPool::global().parallel_for(o.shards, [&](int64_t s0, int64_t s1, int) {
      for (int64_t s = s0; s < s1; ++s) {
        const int r0 = static_cast<int>(s * B / o.shards), r1 = static_cast<int>((s + 1) * B / o.shards);
        for (int r = r0; r < r1; ++r)
          for (int j = 0; j < NL; ++j)
            noise[static_cast<size_t>(r) * NL + j] = gumbel_noise(noise_seed, static_cast<uint64_t>(step) * B + r, j);
        ValueBatch vb;
        vb.n = r1 - r0;
        vb.v = bv.data() + static_cast<int64_t>(r0) * D;
        vb.xbar = bx.data() + static_cast<int64_t>(r0) * D;
        vb.rho = brho.data() + r0;
        vb.gram = use_attn ? bgram.data() + static_cast<int64_t>(r0) * HH : nullptr;
        vb.noise = noise.data() + static_cast<size_t>(r0) * NL;
        vb.norm_rows = B;
        vb.tau = static_cast<float>(o.tau);
        shard_loss[s] =
            value_loss_and_grad(codec, vb, use_attn ? attn : nullptr, ValueRelaxation::HardStraightThrough, &grads[s]);
      }
    });
    double loss = 0;
    for (const auto& l : shard_loss) loss += l.total();
    // Reduce shards into grads[0] and take the global norm.
    std::vector<std::vector<float>*> g0 = value_trainable_params(grads[0]);
    // Squared norms per fixed block of elements, summed in block order: the same sum whatever
    // the thread count (a sum per thread's part would depend on how the pool splits the range).
    constexpr int64_t kNormBlock = 8192;
    std::vector<double> sq(g0.size(), 0.0);
    for (size_t pi = 0; pi < g0.size(); ++pi) {
      std::vector<float>& dst = *g0[pi];
      const int64_t size = static_cast<int64_t>(dst.size());
      std::vector<double> block_sq(static_cast<size_t>((size + kNormBlock - 1) / kNormBlock), 0.0);
      ThreadPool::global().parallel_for(static_cast<int64_t>(block_sq.size()), [&](int64_t b0, int64_t b1, int) {
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t b = blk * kNormBlock, e = std::min(size, b + kNormBlock);
          for (int s = 1; s < o.shards; ++s) {
            const std::vector<float>& src = *value_trainable_params(grads[s])[pi];
            for (int64_t i = b; i < e; ++i) dst[i] += src[i];
          }
          double acc = 0;
          for (int64_t i = b; i < e; ++i) acc += static_cast<double>(dst[i]) * dst[i];
          block_sq[static_cast<size_t>(blk)] = acc;
        }
      });
      for (double x : block_sq) sq[pi] += x;
    }
    double total_sq = 0;
    for (double x : sq) total_sq += x;
    const double gnorm = std::sqrt(total_sq);
    const float clip =
        (o.grad_clip > 0 && gnorm > o.grad_clip) ? static_cast<float>(o.grad_clip / (gnorm + 1e-6)) : 1.0f;
    const double bc1 = 1.0 - std::pow(o.beta1, step + 1), bc2 = 1.0 - std::pow(o.beta2, step + 1);
    const float lr = static_cast<float>(o.lr), decay = static_cast<float>(1.0 - o.lr * o.weight_decay);
    const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
    const float step_size = static_cast<float>(lr / bc1), inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
    const float eps = static_cast<float>(o.adam_eps);
    for (size_t pi = 0; pi < params.size(); ++pi) {
      float* p = params[pi]->data();
      float* mm = mom1[pi]->data();
      float* vv = mom2[pi]->data();
      const float* g = g0[pi]->data();
      ThreadPool::global().parallel_for(
          static_cast<int64_t>(params[pi]->size()),
          [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) {
              const float gi = g[i] * clip;
              mm[i] = b1 * mm[i] + (1.0f - b1) * gi;
              vv[i] = b2 * vv[i] + (1.0f - b2) * gi * gi;
              p[i] = p[i] * decay - step_size * mm[i] / (std::sqrt(vv[i]) * inv_sqrt_bc2 + eps);
            }
          },
          8192);
    }
    curve_sum += loss;
    ++curve_n;
    if ((step + 1) % curve_every == 0 || step + 1 == o.steps) {
      rep.loss_curve.emplace_back(step + 1, curve_sum / curve_n);
      char buf[64];
      std::snprintf(buf, sizeof buf, "loss %.4g", curve_sum / curve_n);
      curve_sum = 0;
      curve_n = 0;
      prog.update(step + 1, buf);
    }
  }
  rep.train_seconds = seconds_since(t_train);
  rep.steps = o.steps;
  prog.finish();
  if (o.refit_rounds > 0 || o.refine_sweeps > 0) {
    {
      const auto t0 = Clock::now();
      rep.gradient_only = evaluate_value_codec(codec, d, rope, eval_attn, eval_seqs);
      rep.eval_seconds += seconds_since(t0);
    }
    const auto t0 = Clock::now();
    codec.refine_sweeps = o.refine_sweeps;
    // Tokens for the refit: evenly spaced over the training rows, plus every sequence's first
    // tokens (the attention sink, which the attention weights below lean on).
    const int64_t n_even = o.refit_tokens > 0 ? std::min(n_train, o.refit_tokens) : n_train;
    std::vector<int64_t> fit_rows;
    for (int64_t r = 0; r < n_even; ++r) fit_rows.push_back(train_rows[r * n_train / n_even]);
    if (n_even < n_train && static_cast<int64_t>(d.positions.size()) == d.n_tokens) {
      for (int64_t row : train_rows)
        if (d.positions[row] < 4) fit_rows.push_back(row);
      std::sort(fit_rows.begin(), fit_rows.end());
      fit_rows.erase(std::unique(fit_rows.begin(), fit_rows.end()), fit_rows.end());
    }
    const int64_t n_fit = static_cast<int64_t>(fit_rows.size());
    std::vector<float> tv(static_cast<size_t>(n_fit) * D), tx(tv.size()), weights;
    for (int64_t r = 0; r < n_fit; ++r) {
      const float* v = d.values.data() + fit_rows[r] * D;
      std::copy_n(v, D, tv.data() + r * D);
      for (int i = 0; i < D; ++i) tx[static_cast<size_t>(r) * D + i] = v[i] / (codec.scale[i] + kValueEps);
    }
    if (use_attn && o.refit_attention_weights) {
      // Per-token share of the docs/METHOD.md §5.4 loss: ½/D from the value term, plus the diagonal of the attention
      // term with o_proj taken as isotropic per head: Σ_h G_t[h,h]·||W_h||²_F / (hd·n_kv·n_embd).
      const int hd = d.head_dim;
      std::vector<double> w_head(H, 0.0);
      for (int r = 0; r < attn->n_embd; ++r)
        for (int h = 0; h < H; ++h)
          for (int i = 0; i < hd; ++i) {
            const double w = attn->w_o[static_cast<size_t>(r) * attn->q_dim() + h * hd + i];
            w_head[h] += w * w;
          }
      weights.resize(n_fit);
      for (int64_t r = 0; r < n_fit; ++r) {
        const float* g = gram.data() + fit_rows[r] * HH;
        double a = 0;
        for (int h = 0; h < H; ++h) a += g[h * H + h] * w_head[h];
        weights[r] = static_cast<float>(0.5 / D + a / (static_cast<double>(hd) * d.n_head_kv * attn->n_embd));
      }
    }
    std::vector<uint8_t> codes(static_cast<size_t>(n_fit) * codec.shape().code_bytes());
    std::vector<uint16_t> p(n_fit);
    for (int round = 0; round < o.refit_rounds; ++round) {
      codec.encode(tv.data(), n_fit, codes.data(), p.data());
      refit_value_codebook(codec, codes.data(), tx.data(), n_fit, 1e-3, weights.empty() ? nullptr : weights.data());
    }
    rep.refit_seconds = seconds_since(t0);
  }
  {
    const auto t0 = Clock::now();
    rep.trained = evaluate_value_codec(codec, d, rope, eval_attn, eval_seqs);
    rep.eval_seconds += seconds_since(t0);
  }
  if (report) *report = rep;
  return codec;
}

}  // namespace cvq
