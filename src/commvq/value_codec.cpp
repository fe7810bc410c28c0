#include "commvq/value_codec.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "commvq/value_refine.h"
#include "commvq/value_rng.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/safetensors.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gelu.h"

namespace cvq {

float gelu(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

float gelu_grad(float x) {
  const float cdf = 0.5f * (1.0f + std::erf(x * 0.70710678118654752f));
  const float pdf = 0.39894228040143268f * std::exp(-0.5f * x * x);
  return cdf + x * pdf;
}

ValueCodec::ValueCodec(int dim, int bits) {
  if (dim <= 0 || bits <= 0 || (dim * bits) % 2 != 0) {
    throw Error("value codec: D·bits must be a positive even number (D=" + std::to_string(dim) +
                ", bits=" + std::to_string(bits) + ")");
  }
  shape_.dim = dim;
  shape_.bits = bits;
  const size_t D = dim, I = shape_.hidden(), L = shape_.n_logits(), K = shape_.code_bits();
  scale.assign(D, 1.0f);
  ln_gamma.assign(D, 1.0f);
  ln_beta.assign(D, 0.0f);
  w1.assign(I * D, 0.0f);
  b1.assign(I, 0.0f);
  w2.assign(L * I, 0.0f);
  b2.assign(L, 0.0f);
  codebook.assign(K * D, 0.0f);
}

void ValueCodec::init_random(uint64_t seed) {
  ValueRng rng(seed);
  const int D = shape_.dim, I = shape_.hidden();
  const float a1 = 1.0f / std::sqrt(static_cast<float>(D)), a2 = 1.0f / std::sqrt(static_cast<float>(I));
  for (auto& w : w1) w = rng.uniform_sym(a1);
  for (auto& w : b1) w = rng.uniform_sym(a1);
  for (auto& w : w2) w = rng.uniform_sym(a2);
  for (auto& w : b2) w = rng.uniform_sym(a2);
  for (auto& w : codebook) w = static_cast<float>(rng.normal()) * a1;
  std::fill(ln_gamma.begin(), ln_gamma.end(), 1.0f);
  std::fill(ln_beta.begin(), ln_beta.end(), 0.0f);
}

void ValueCodec::fit_scale(const float* v, int64_t n) {
  const int D = shape_.dim;
  std::vector<double> acc(D, 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int i = 0; i < D; ++i) acc[i] += std::fabs(v[t * D + i]);
  for (int i = 0; i < D; ++i) scale[i] = n > 0 ? static_cast<float>(acc[i] / static_cast<double>(n)) : 1.0f;
}

void ValueCodec::normalize(const float* v, float* xbar, float* rho) const {
  const int D = shape_.dim;
  double ss = 0.0;
  for (int i = 0; i < D; ++i) {
    xbar[i] = v[i] / (scale[i] + kValueEps);
    ss += static_cast<double>(xbar[i]) * xbar[i];
  }
  const float r = static_cast<float>(std::sqrt(ss));
  const float inv = 1.0f / (r + kValueEps);
  for (int i = 0; i < D; ++i) xbar[i] *= inv;
  *rho = r;
}

void ValueCodec::logits(const float* xbar, int64_t n, float* out) const {
  const int D = shape_.dim, I = shape_.hidden(), L = shape_.n_logits();
  constexpr int64_t kRows = 64;
  const int64_t n_blocks = (n + kRows - 1) / kRows;
  ThreadPool::global().parallel_for(n_blocks, [&](int64_t b0, int64_t b1_, int) {
    std::vector<float> a(static_cast<size_t>(kRows) * D), h(static_cast<size_t>(kRows) * I);
    for (int64_t b = b0; b < b1_; ++b) {
      const int64_t r0 = b * kRows;
      const int rows = static_cast<int>(std::min<int64_t>(kRows, n - r0));
      for (int r = 0; r < rows; ++r) {
        const float* x = xbar + (r0 + r) * D;
        double mu = 0, var = 0;
        for (int i = 0; i < D; ++i) mu += x[i];
        mu /= D;
        for (int i = 0; i < D; ++i) var += (x[i] - mu) * (x[i] - mu);
        var /= D;
        const float rstd = static_cast<float>(1.0 / std::sqrt(var + kValueLayerNormEps));
        for (int i = 0; i < D; ++i) a[r * D + i] = (x[i] - static_cast<float>(mu)) * rstd * ln_gamma[i] + ln_beta[i];
      }
      for (int r = 0; r < rows; ++r) std::copy(b1.begin(), b1.end(), h.begin() + static_cast<int64_t>(r) * I);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, I, D, 1.0f, a.data(), D, w1.data(), D, 1.0f, h.data(),
                  I);
      gelu_inplace(h.data(), static_cast<int64_t>(rows) * I);
      float* o = out + r0 * L;
      for (int r = 0; r < rows; ++r) std::copy(b2.begin(), b2.end(), o + static_cast<int64_t>(r) * L);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, L, I, 1.0f, h.data(), I, w2.data(), I, 1.0f, o, L);
    }
  });
}

void ValueCodec::prepare_refinement() {
  refine_tables = std::make_shared<const ValueRefineTables>(make_value_refine_tables(*this));
}

void ValueCodec::encode(const float* v, int64_t n, uint8_t* codes, uint16_t* p_fp16, int sweeps) const {
  // Each block of tokens goes through every step on one thread (the steps' own parallel loops then run
  // inline). Blocks start at multiples of 64 tokens, as the row blocks of logits(), refinement and
  // code_vectors() do, so every GEMM sees the same rows whatever the thread count.
  const int D = shape_.dim, G = shape_.n_groups(), L = shape_.n_logits(), CB = shape_.code_bytes();
  constexpr int64_t kRows = 64;
  ThreadPool::global().parallel_for((n + kRows - 1) / kRows, [&](int64_t first, int64_t last, int) {
    const int64_t t0 = first * kRows, m = std::min(n, last * kRows) - t0;
    std::vector<float> xbar(static_cast<size_t>(m) * D), rho(m), lg(static_cast<size_t>(m) * L),
        y(static_cast<size_t>(m) * D);
    for (int64_t t = 0; t < m; ++t) normalize(v + (t0 + t) * D, xbar.data() + t * D, &rho[t]);
    logits(xbar.data(), m, lg.data());
    uint8_t* block_codes = codes + t0 * CB;
    std::memset(block_codes, 0, static_cast<size_t>(m) * CB);
    for (int64_t t = 0; t < m; ++t) {
      const float* z = lg.data() + t * L;
      uint8_t* c = block_codes + t * CB;
      for (int g = 0; g < G; ++g) {
        int best = 0;
        for (int k = 1; k < 4; ++k)
          if (z[4 * g + k] > z[4 * g + best]) best = k;
        if (value_choice_b1(best)) c[(2 * g) >> 3] |= static_cast<uint8_t>(1u << ((2 * g) & 7));
        if (value_choice_b2(best)) c[(2 * g + 1) >> 3] |= static_cast<uint8_t>(1u << ((2 * g + 1) & 7));
      }
    }
    refine_value_codes(*this, xbar.data(), m, block_codes, sweeps, refine_tables.get());
    code_vectors(block_codes, m, y.data());
    for (int64_t t = 0; t < m; ++t) {
      double ss = 0;
      for (int i = 0; i < D; ++i) ss += static_cast<double>(y[t * D + i]) * y[t * D + i];
      const float p = (rho[t] + kValueEps) / (static_cast<float>(std::sqrt(ss)) + kValueEps);
      p_fp16[t0 + t] = float_to_fp16(p);
    }
  });
}

void ValueCodec::code_vectors(const uint8_t* codes, int64_t n, float* y) const {
  // y = B·C with B the codes' bits as a 0/1 matrix, a block of tokens per SGEMM.
  const int D = shape_.dim, K = shape_.code_bits(), CB = shape_.code_bytes();
  constexpr int64_t kRows = 64;
  std::vector<float> bits(static_cast<size_t>(std::min<int64_t>(n, kRows)) * K);
  for (int64_t t0 = 0; t0 < n; t0 += kRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, n - t0));
    for (int r = 0; r < rows; ++r) {
      const uint8_t* c = codes + (t0 + r) * CB;
      for (int j = 0; j < K; ++j) bits[static_cast<size_t>(r) * K + j] = static_cast<float>(value_code_bit(c, j));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, K, 1.0f, bits.data(), K, codebook.data(), D, 0.0f,
                y + t0 * D, D);
  }
}

void ValueCodec::decode(const uint8_t* codes, const uint16_t* p_fp16, int64_t n, float* v_out) const {
  const int D = shape_.dim;
  code_vectors(codes, n, v_out);
  for (int64_t t = 0; t < n; ++t) {
    const float p = fp16_to_float(p_fp16[t]);
    for (int i = 0; i < D; ++i) v_out[t * D + i] = scale[i] * (v_out[t * D + i] * p);
  }
}

void ValueCodec::roundtrip(const float* v, int64_t n, float* v_out) const {
  std::vector<uint8_t> codes(static_cast<size_t>(n) * shape_.code_bytes());
  std::vector<uint16_t> p(n);
  encode(v, n, codes.data(), p.data());
  decode(codes.data(), p.data(), n, v_out);
}

void ValueCodec::save(SafetensorsWriter& w, const std::string& prefix) const {
  const int64_t D = shape_.dim, I = shape_.hidden(), L = shape_.n_logits(), K = shape_.code_bits();
  w.add_f32(prefix + "scale", {D}, scale);
  w.add_f32(prefix + "ln_gamma", {D}, ln_gamma);
  w.add_f32(prefix + "ln_beta", {D}, ln_beta);
  w.add_f32(prefix + "w1", {I, D}, w1);
  w.add_f32(prefix + "b1", {I}, b1);
  w.add_f32(prefix + "w2", {L, I}, w2);
  w.add_f32(prefix + "b2", {L}, b2);
  w.add_f32(prefix + "codebook", {K, D}, codebook);
  w.add_i32(prefix + "refine_sweeps", {1}, {refine_sweeps});
}

ValueCodec ValueCodec::load(const SafetensorsReader& r, const std::string& prefix) {
  const auto& cb = r.tensor(prefix + "codebook");
  if (cb.shape.size() != 2 || cb.shape[1] <= 0 || cb.shape[0] % cb.shape[1] != 0) {
    fail_file(r.path(), "tensor '" + prefix + "codebook' does not have shape [D·bits, D]");
  }
  const int D = static_cast<int>(cb.shape[1]), bits = static_cast<int>(cb.shape[0] / cb.shape[1]);
  ValueCodec c(D, bits);
  const int64_t I = c.shape_.hidden(), L = c.shape_.n_logits(), K = c.shape_.code_bits();
  auto get = [&](const char* name, std::vector<int64_t> shape, std::vector<float>& dst) {
    r.tensor(prefix + name, StDtype::F32, shape);
    dst = r.floats(prefix + name);
  };
  get("scale", {D}, c.scale);
  get("ln_gamma", {D}, c.ln_gamma);
  get("ln_beta", {D}, c.ln_beta);
  get("w1", {I, D}, c.w1);
  get("b1", {I}, c.b1);
  get("w2", {L, I}, c.w2);
  get("b2", {L}, c.b2);
  get("codebook", {K, D}, c.codebook);
  if (r.has(prefix + "refine_sweeps")) {
    const auto& t = r.tensor(prefix + "refine_sweeps", StDtype::I32, {1});
    int32_t sweeps = 0;
    std::memcpy(&sweeps, t.data, sizeof sweeps);
    if (sweeps < 0 || sweeps > 1000) fail_file(r.path(), "tensor '" + prefix + "refine_sweeps' is out of range");
    c.refine_sweeps = sweeps;
  }
  c.prepare_refinement();
  return c;
}

}  // namespace cvq
