#include "commvq/value_trainer.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commvq/value_refine.h"
#include "commvq/value_rng.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kv/collect.h"
#include "model/llama_model.h"

namespace cvq {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Sequence boundaries; data without any is one sequence.
std::vector<int64_t> sequence_starts(const ValueLayerData& d) {
  if (d.seq_starts.size() >= 2) return d.seq_starts;
  return {0, d.n_tokens};
}

// Causal attention probabilities of one sequence [s0, s1), by blocks of queries: calls
// fn(i0, qb, ctx, P) with P = [H][qb][ctx] (sequence-local query rows i0.., keys 0..ctx-1, ctx = i0+qb;
// entries past the query's own index are 0). Keys get RoPE at their stored positions.
template <class Fn>
void attention_blocks(const ValueLayerData& d, const Rope& rope, int64_t s0, int64_t s1, Fn&& fn) {
  const int L = static_cast<int>(s1 - s0), H = d.n_head, hd = d.head_dim, D = d.dim(), qd = d.q_dim();
  const int group = d.n_head / d.n_head_kv;
  std::vector<float> kr(d.keys_pre_rope.begin() + s0 * D, d.keys_pre_rope.begin() + s1 * D);
  for (int t = 0; t < L; ++t) rope.apply(kr.data() + static_cast<int64_t>(t) * D, d.n_head_kv, d.positions[s0 + t]);
  constexpr int kQB = 128;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> P(static_cast<size_t>(H) * kQB * L);
  for (int i0 = 0; i0 < L; i0 += kQB) {
    const int qb = std::min(kQB, L - i0), ctx = i0 + qb;
    for (int h = 0; h < H; ++h) {
      float* ph = P.data() + static_cast<int64_t>(h) * qb * ctx;
      const float* q = d.queries.data() + (s0 + i0) * qd + h * hd;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, qb, ctx, hd, scale, q, qd, kr.data() + (h / group) * hd, D,
                  0.0f, ph, ctx);
      for (int r = 0; r < qb; ++r) softmax_masked(ph + static_cast<int64_t>(r) * ctx, ctx, i0 + r + 1);
    }
    fn(i0, qb, ctx, P.data());
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Data

ValueLayerData load_value_layer_data(const std::string& layer_file, int n_head, int n_head_kv, int head_dim) {
  SafetensorsReader r(layer_file);
  ValueLayerData d;
  d.n_head = n_head;
  d.n_head_kv = n_head_kv;
  d.head_dim = head_dim;
  if (r.metadata().count("layer")) d.layer = std::stoi(r.metadata().at("layer"));
  const auto& tv = r.tensor("values");
  if (tv.shape.size() != 2 || tv.shape[1] != d.dim()) {
    fail_file(layer_file, "tensor 'values' has shape of rank " + std::to_string(tv.shape.size()) +
                              " / width not equal to the model's kv_dim " + std::to_string(d.dim()) +
                              " (activations collected with another model?)");
  }
  const int64_t N = tv.shape[0];
  d.n_tokens = N;
  auto float_tensor = [&](const char* name, int64_t cols) {
    const auto& t = r.tensor(name);
    if (t.shape != std::vector<int64_t>{N, cols}) {
      fail_file(layer_file, std::string("tensor '") + name + "' does not have shape [" + std::to_string(N) + ", " +
                                std::to_string(cols) + "] (activations collected with another model?)");
    }
    return r.floats(name);
  };
  d.values = float_tensor("values", d.dim());
  d.keys_pre_rope = float_tensor("keys", d.dim());
  d.queries = float_tensor("queries", d.q_dim());
  const auto& tp = r.tensor("positions", StDtype::I32, {N});
  d.positions.assign(reinterpret_cast<const int32_t*>(tp.data), reinterpret_cast<const int32_t*>(tp.data) + N);
  if (r.has("seq_starts")) {
    const auto& ts = r.tensor("seq_starts");
    if (ts.dtype != StDtype::I64 || ts.shape.size() != 1 || ts.shape[0] < 1)
      fail_file(layer_file, "tensor 'seq_starts' is not I64 [n_seq + 1]");
    d.seq_starts.resize(static_cast<size_t>(ts.shape[0]));
    std::memcpy(d.seq_starts.data(), ts.data, ts.n_bytes);
  } else {
    const auto& ti = r.tensor("seq_ids", StDtype::I32, {N});
    const auto* ids = reinterpret_cast<const int32_t*>(ti.data);
    d.seq_starts = {0};
    for (int64_t i = 1; i < N; ++i)
      if (ids[i] != ids[i - 1]) d.seq_starts.push_back(i);
    d.seq_starts.push_back(N);
  }
  for (size_t i = 1; i < d.seq_starts.size(); ++i) {
    if (d.seq_starts[i] < d.seq_starts[i - 1] || d.seq_starts[i] > N)
      fail_file(layer_file, "tensor 'seq_starts' is not ascending within [0, N]");
  }
  if (d.seq_starts.front() != 0 || d.seq_starts.back() != N)
    fail_file(layer_file, "tensor 'seq_starts' does not cover [0, N]");
  return d;
}

void value_attention_gram(const ValueLayerData& d, const Rope& rope, const std::vector<int>& sequences, float* gram) {
  const int H = d.n_head;
  const auto starts = sequence_starts(d);
  ThreadPool::global().parallel_for(static_cast<int64_t>(sequences.size()), [&](int64_t b, int64_t e, int) {
    for (int64_t si = b; si < e; ++si) {
      const int64_t s0 = starts[sequences[si]], s1 = starts[sequences[si] + 1];
      const int L = static_cast<int>(s1 - s0);
      // acc[pair][t] for the H(H+1)/2 head pairs h <= h2, contiguous in t so the inner loop vectorizes.
      const int n_pairs = H * (H + 1) / 2;
      std::vector<float> acc(static_cast<size_t>(n_pairs) * L, 0.0f);
      attention_blocks(d, rope, s0, s1, [&](int i0, int qb, int ctx, const float* P) {
        int pair = 0;
        for (int h = 0; h < H; ++h)
          for (int h2 = h; h2 < H; ++h2, ++pair) {
            float* a = acc.data() + static_cast<int64_t>(pair) * L;
            const float* pa = P + static_cast<int64_t>(h) * qb * ctx;
            const float* pb = P + static_cast<int64_t>(h2) * qb * ctx;
            for (int r = 0; r < qb; ++r) {
              const float* ra = pa + static_cast<int64_t>(r) * ctx;
              const float* rb = pb + static_cast<int64_t>(r) * ctx;
              const int n_vis = i0 + r + 1;
              for (int t = 0; t < n_vis; ++t) a[t] += ra[t] * rb[t];
            }
          }
      });
      int pair = 0;
      for (int h = 0; h < H; ++h)
        for (int h2 = h; h2 < H; ++h2, ++pair)
          for (int t = 0; t < L; ++t) {
            const float v = acc[static_cast<int64_t>(pair) * L + t];
            gram[(s0 + t) * H * H + h * H + h2] = v;
            gram[(s0 + t) * H * H + h2 * H + h] = v;
          }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Loss and gradients

ValueCodec value_codec_zeros_like(const ValueCodec& c) {
  ValueCodec z(c.shape().dim, c.shape().bits);
  for (auto* p : value_trainable_params(z)) std::fill(p->begin(), p->end(), 0.0f);
  std::fill(z.scale.begin(), z.scale.end(), 0.0f);
  return z;
}

std::vector<std::vector<float>*> value_trainable_params(ValueCodec& c) {
  return {&c.ln_gamma, &c.ln_beta, &c.w1, &c.b1, &c.w2, &c.b2, &c.codebook};
}

ValueLossTerms value_loss_and_grad(const ValueCodec& c, const ValueBatch& b, const ValueAttnProj* attn,
                                   ValueRelaxation mode, ValueCodec* gr) {
  const ValueCodecShape& S = c.shape();
  const int D = S.dim, I = S.hidden(), NL = S.n_logits(), K = S.code_bits(), G = S.n_groups(), n = b.n;
  const double norm = b.norm_rows > 0 ? b.norm_rows : n;
  const size_t nD = static_cast<size_t>(n) * D;
  ValueLossTerms out;
  if (n == 0) {
    if (gr) *gr = value_codec_zeros_like(c);
    return out;
  }

  // Encoder forward.
  std::vector<float> xhat(nD), a(nD), rstd(n);
  for (int t = 0; t < n; ++t) {
    const float* x = b.xbar + static_cast<int64_t>(t) * D;
    double mu = 0, var = 0;
    for (int i = 0; i < D; ++i) mu += x[i];
    mu /= D;
    for (int i = 0; i < D; ++i) var += (x[i] - mu) * (x[i] - mu);
    var /= D;
    rstd[t] = static_cast<float>(1.0 / std::sqrt(var + kValueLayerNormEps));
    for (int i = 0; i < D; ++i) {
      const size_t k = static_cast<size_t>(t) * D + i;
      xhat[k] = (x[i] - static_cast<float>(mu)) * rstd[t];
      a[k] = xhat[k] * c.ln_gamma[i] + c.ln_beta[i];
    }
  }
  std::vector<float> h1(static_cast<size_t>(n) * I), act(h1.size());
  for (int t = 0; t < n; ++t) std::copy(c.b1.begin(), c.b1.end(), h1.begin() + static_cast<int64_t>(t) * I);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, I, D, 1.0f, a.data(), D, c.w1.data(), D, 1.0f, h1.data(), I);
  for (size_t i = 0; i < h1.size(); ++i) act[i] = gelu(h1[i]);
  std::vector<float> z(static_cast<size_t>(n) * NL);
  for (int t = 0; t < n; ++t) std::copy(c.b2.begin(), c.b2.end(), z.begin() + static_cast<int64_t>(t) * NL);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, NL, I, 1.0f, act.data(), I, c.w2.data(), I, 1.0f, z.data(),
              NL);

  // Group choice: softmax of (z + noise) / tau per group of 4; forward with the one-hot (hard) or the
  // softmax itself (soft).
  const float tau = b.tau > 0 ? b.tau : 1.0f;
  std::vector<float> ysoft(z.size()), used(z.size());
  for (int t = 0; t < n; ++t)
    for (int g = 0; g < G; ++g) {
      const size_t o = static_cast<size_t>(t) * NL + 4 * g;
      float zz[4], mx = -INFINITY;
      int best = 0;
      for (int k = 0; k < 4; ++k) {
        zz[k] = (z[o + k] + (b.noise ? b.noise[o + k] : 0.0f)) / tau;
        if (zz[k] > mx) {
          mx = zz[k];
          best = k;
        }
      }
      float sum = 0;
      for (int k = 0; k < 4; ++k) sum += (ysoft[o + k] = std::exp(zz[k] - mx));
      for (int k = 0; k < 4; ++k) ysoft[o + k] /= sum;
      for (int k = 0; k < 4; ++k)
        used[o + k] = mode == ValueRelaxation::Soft ? ysoft[o + k] : (k == best ? 1.0f : 0.0f);
    }
  std::vector<float> bits(static_cast<size_t>(n) * K);
  for (int t = 0; t < n; ++t)
    for (int g = 0; g < G; ++g) {
      const float* u = used.data() + static_cast<size_t>(t) * NL + 4 * g;
      bits[static_cast<size_t>(t) * K + 2 * g] = u[0] + u[2];
      bits[static_cast<size_t>(t) * K + 2 * g + 1] = u[1] + u[2];
    }

  // Decoder: y = bᵀC, p = (rho+eps)/(||y||+eps), v̂ = s ⊙ y·p.
  std::vector<float> y(nD), ny(n), p(n), e(nD);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, K, 1.0f, bits.data(), K, c.codebook.data(), D, 0.0f,
              y.data(), D);
  double sq_err = 0.0;
  for (int t = 0; t < n; ++t) {
    double ss = 0;
    for (int i = 0; i < D; ++i) ss += static_cast<double>(y[t * D + i]) * y[t * D + i];
    ny[t] = static_cast<float>(std::sqrt(ss));
    p[t] = (b.rho[t] + kValueEps) / (ny[t] + kValueEps);
    for (int i = 0; i < D; ++i) {
      const size_t k = static_cast<size_t>(t) * D + i;
      e[k] = c.scale[i] * y[k] * p[t] - b.v[k];
      sq_err += static_cast<double>(e[k]) * e[k];
    }
  }
  out.value_mse = sq_err / (norm * D);

  // Attention term (per-token form): u_h = W_h e[g(h)], loss_t = Σ_{h,h'} G_t[h,h'] u_h·u_h'.
  const bool use_attn = attn && b.gram;
  const int H = use_attn ? attn->n_head : 0, E = use_attn ? attn->n_embd : 0;
  const int hd = use_attn ? attn->head_dim : 0, group = use_attn ? attn->n_head / attn->n_head_kv : 1;
  std::vector<float> U, R;
  if (use_attn) {
    const int qd = attn->q_dim();
    const size_t nE = static_cast<size_t>(n) * E;
    U.assign(static_cast<size_t>(H) * nE, 0.0f);
    R.assign(U.size(), 0.0f);
    for (int h = 0; h < H; ++h) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, E, hd, 1.0f, e.data() + (h / group) * hd, D,
                  attn->w_o + h * hd, qd, 0.0f, U.data() + h * nE, E);
    }
    double acc = 0.0;
    for (int t = 0; t < n; ++t) {
      const float* gt = b.gram + static_cast<size_t>(t) * H * H;
      for (int h = 0; h < H; ++h) {
        float* r = R.data() + h * nE + static_cast<size_t>(t) * E;
        for (int h2 = 0; h2 < H; ++h2) {
          const float w = gt[h * H + h2];
          if (w == 0.0f) continue;
          const float* u2 = U.data() + h2 * nE + static_cast<size_t>(t) * E;
          for (int j = 0; j < E; ++j) r[j] += w * u2[j];
        }
        const float* u = U.data() + h * nE + static_cast<size_t>(t) * E;
        double dot = 0;
        for (int j = 0; j < E; ++j) dot += static_cast<double>(u[j]) * r[j];
        acc += dot;
      }
    }
    out.attn_mse = acc / (norm * E);
  }
  if (!gr) return out;

  // Backward. d total / d e: ½·value term + attention term.
  std::vector<float> ge(nD);
  const float kv = static_cast<float>(1.0 / (norm * D));
  for (size_t k = 0; k < nD; ++k) ge[k] = e[k] * kv;
  if (use_attn) {
    const int qd = attn->q_dim();
    const size_t nE = static_cast<size_t>(n) * E;
    const float ka = static_cast<float>(2.0 / (norm * E));
    for (int h = 0; h < H; ++h) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, E, ka, R.data() + h * nE, E, attn->w_o + h * hd, qd,
                  1.0f, ge.data() + (h / group) * hd, D);
    }
  }
  // v̂ = s ⊙ y·p(y): gy = s⊙ge·p + (Σ s⊙y⊙ge) · dp/dy,  dp/dy = −p/(||y||+eps) · y/||y||.
  std::vector<float> gy(nD);
  for (int t = 0; t < n; ++t) {
    double sdot = 0;
    for (int i = 0; i < D; ++i) sdot += static_cast<double>(c.scale[i]) * y[t * D + i] * ge[t * D + i];
    const float coef = ny[t] > 1e-30f ? static_cast<float>(-sdot * p[t] / ((ny[t] + kValueEps) * ny[t])) : 0.0f;
    for (int i = 0; i < D; ++i) gy[t * D + i] = c.scale[i] * ge[t * D + i] * p[t] + coef * y[t * D + i];
  }
  // Codebook and bits.
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, D, n, 1.0f, bits.data(), K, gy.data(), D, 0.0f,
              gr->codebook.data(), D);
  std::vector<float> gbits(static_cast<size_t>(n) * K);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, K, D, 1.0f, gy.data(), D, c.codebook.data(), D, 0.0f,
              gbits.data(), K);
  // bits (o0+o2, o1+o2) -> d/do = (gb1, gb2, gb1+gb2, 0); through the softmax (straight-through in hard mode).
  std::vector<float> gz(z.size());
  for (int t = 0; t < n; ++t)
    for (int g = 0; g < G; ++g) {
      const float gb1 = gbits[static_cast<size_t>(t) * K + 2 * g], gb2 = gbits[static_cast<size_t>(t) * K + 2 * g + 1];
      const float go[4] = {gb1, gb2, gb1 + gb2, 0.0f};
      const size_t o = static_cast<size_t>(t) * NL + 4 * g;
      float dot = 0;
      for (int k = 0; k < 4; ++k) dot += ysoft[o + k] * go[k];
      for (int k = 0; k < 4; ++k) gz[o + k] = ysoft[o + k] * (go[k] - dot) / tau;
    }
  // Linear 2.
  std::fill(gr->b2.begin(), gr->b2.end(), 0.0f);
  for (int t = 0; t < n; ++t)
    for (int j = 0; j < NL; ++j) gr->b2[j] += gz[static_cast<size_t>(t) * NL + j];
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, NL, I, n, 1.0f, gz.data(), NL, act.data(), I, 0.0f,
              gr->w2.data(), I);
  std::vector<float> gh(h1.size());
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, I, NL, 1.0f, gz.data(), NL, c.w2.data(), I, 0.0f, gh.data(),
              I);
  // GELU.
  for (size_t i = 0; i < gh.size(); ++i) gh[i] *= gelu_grad(h1[i]);
  // Linear 1.
  std::fill(gr->b1.begin(), gr->b1.end(), 0.0f);
  for (int t = 0; t < n; ++t)
    for (int j = 0; j < I; ++j) gr->b1[j] += gh[static_cast<size_t>(t) * I + j];
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, I, D, n, 1.0f, gh.data(), I, a.data(), D, 0.0f, gr->w1.data(),
              D);
  std::vector<float> ga(nD);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, I, 1.0f, gh.data(), I, c.w1.data(), D, 0.0f, ga.data(),
              D);
  // LayerNorm affine (the input xbar is data: no gradient needed past x̂).
  std::fill(gr->ln_gamma.begin(), gr->ln_gamma.end(), 0.0f);
  std::fill(gr->ln_beta.begin(), gr->ln_beta.end(), 0.0f);
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < D; ++i) {
      const size_t k = static_cast<size_t>(t) * D + i;
      gr->ln_gamma[i] += ga[k] * xhat[k];
      gr->ln_beta[i] += ga[k];
    }
  std::fill(gr->scale.begin(), gr->scale.end(), 0.0f);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

ValueEvalMetrics evaluate_value_codec(const ValueCodec& codec, const ValueLayerData& d, const Rope& rope,
                                      const ValueAttnProj* attn, const std::vector<int>& sequences) {
  const int D = d.dim();
  const auto starts = sequence_starts(d);
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
      attention_blocks(d, rope, s0, s1, [&](int i0, int qb, int ctx, const float* P) {
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
  const auto starts = sequence_starts(d);
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

ValueCodec train_value_codec_from_collection(const std::string& collect_dir, int layer, const LlamaModel& model,
                                             const ValueTrainOptions& opts, ValueTrainReport* report) {
  const LlamaConfig& cfg = model.config();
  if (layer < 0 || layer >= cfg.n_layers) {
    throw Error("layer " + std::to_string(layer) + " is out of range for the model (" + std::to_string(cfg.n_layers) +
                " layers)");
  }
  const std::string manifest = (std::filesystem::path(collect_dir) / "manifest.json").string();
  if (!std::filesystem::exists(manifest))
    fail_file(manifest, "not found: run `collect` into this folder first (or let it finish)");
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(read_file(manifest));
    const auto& g = m.at("geometry");
    if (g.at("n_layers").get<int>() != cfg.n_layers || g.at("n_head").get<int>() != cfg.n_head ||
        g.at("n_head_kv").get<int>() != cfg.n_head_kv || g.at("head_dim").get<int>() != cfg.head_dim) {
      fail_file(manifest, "activations were collected with a model of another shape than " + model.gguf().path());
    }
  } catch (const nlohmann::json::exception& e) {
    fail_file(manifest, std::string("malformed manifest: ") + e.what());
  }
  ValueLayerData d =
      load_value_layer_data(collect_layer_file(collect_dir, layer), cfg.n_head, cfg.n_head_kv, cfg.head_dim);
  d.layer = layer;
  const std::vector<float> w_o = model.dense_attn_output(layer);
  ValueAttnProj attn;
  attn.w_o = w_o.data();
  attn.n_embd = cfg.n_embd;
  attn.n_head = cfg.n_head;
  attn.n_head_kv = cfg.n_head_kv;
  attn.head_dim = cfg.head_dim;
  return train_value_codec(d, model.kv_geometry().rope, &attn, opts, report);
}

}  // namespace cvq
