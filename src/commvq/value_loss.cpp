#include "commvq/value_loss.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "commvq/value_rng.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"

namespace cvq {

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

}  // namespace cvq
