#include "gpu/gpu_llama_model.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/fp16.h"
#include "device/device.h"
#include "gpu/rope_tables.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cuda/norm_act_gpu.h"
#include "kernels/cuda/rope_gpu.h"
#include "model/gguf.h"
#include "model/weight_matrix.h"

namespace cvq::gpu {
namespace {

uint16_t to_half(float f, cuda::HalfType t) { return t == cuda::HalfType::BF16 ? float_to_bf16(f) : float_to_fp16(f); }

// Dequantizes a GGUF matrix row by row to half precision and uploads it in slabs.
void upload_matrix(const GgufFile& f, const std::string& name, cuda::HalfType type, cuda::DeviceBuffer<uint16_t>* out,
                   int64_t* rows, int64_t* cols) {
  const WeightMatrix w(f.tensor(name));
  *rows = w.rows();
  *cols = w.cols();
  *out = cuda::DeviceBuffer<uint16_t>(static_cast<size_t>(w.rows() * w.cols()));
  const int64_t slab = std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(1, w.cols()));
  std::vector<float> row(static_cast<size_t>(w.cols()));
  std::vector<uint16_t> half;
  for (int64_t r0 = 0; r0 < w.rows(); r0 += slab) {
    const int64_t nr = std::min(slab, w.rows() - r0);
    half.resize(static_cast<size_t>(nr * w.cols()));
    for (int64_t r = 0; r < nr; ++r) {
      w.dequantize_row(r0 + r, row.data());
      for (int64_t c = 0; c < w.cols(); ++c)
        half[static_cast<size_t>(r * w.cols() + c)] = to_half(row[static_cast<size_t>(c)], type);
    }
    cuda::copy_to_device(out->get() + r0 * w.cols(), half.data(), half.size() * sizeof(uint16_t));
  }
}

cuda::DeviceBuffer<float> upload_vector(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo& t = f.tensor(name);
  std::vector<float> v(static_cast<size_t>(t.n_elements));
  dequantize_row(t.type, t.data, v.data(), t.n_elements);
  return cuda::upload(v);
}

cuda::DeviceBuffer<float> constant_vector(int64_t n, float value) {
  return cuda::upload(std::vector<float>(static_cast<size_t>(n), value));
}

}  // namespace

std::unique_ptr<GpuLlamaModel> GpuLlamaModel::upload(const LlamaModel& model, cuda::HalfType type) {
  require_cuda("GPU model");
  std::unique_ptr<GpuLlamaModel> m(new GpuLlamaModel());
  m->config_ = model.config();
  m->geometry_ = model.kv_geometry();
  m->type_ = type;
  const GgufFile& f = model.gguf();
  const LlamaConfig& c = m->config_;
  upload_matrix(f, "token_embd.weight", type, &m->token_embd_.w, &m->token_embd_.rows, &m->token_embd_.cols);
  m->tied_output_ = f.find_tensor("output.weight") == nullptr;
  if (!m->tied_output_) upload_matrix(f, "output.weight", type, &m->output_.w, &m->output_.rows, &m->output_.cols);
  m->output_norm_ = upload_vector(f, "output_norm.weight");
  m->layers_.resize(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer& L = m->layers_[static_cast<size_t>(l)];
    L.attn_norm = upload_vector(f, p + "attn_norm.weight");
    L.ffn_norm = upload_vector(f, p + "ffn_norm.weight");
    upload_matrix(f, p + "attn_q.weight", type, &L.wq.w, &L.wq.rows, &L.wq.cols);
    upload_matrix(f, p + "attn_k.weight", type, &L.wk.w, &L.wk.rows, &L.wk.cols);
    upload_matrix(f, p + "attn_v.weight", type, &L.wv.w, &L.wv.rows, &L.wv.cols);
    upload_matrix(f, p + "attn_output.weight", type, &L.wo.w, &L.wo.rows, &L.wo.cols);
    upload_matrix(f, p + "ffn_gate.weight", type, &L.w_gate.w, &L.w_gate.rows, &L.w_gate.cols);
    upload_matrix(f, p + "ffn_up.weight", type, &L.w_up.w, &L.w_up.rows, &L.w_up.cols);
    upload_matrix(f, p + "ffn_down.weight", type, &L.w_down.w, &L.w_down.rows, &L.w_down.cols);
    if (c.qkv_bias) {
      L.bq = upload_vector(f, p + "attn_q.bias");
      L.bk = upload_vector(f, p + "attn_k.bias");
      L.bv = upload_vector(f, p + "attn_v.bias");
    }
  }
  return m;
}

std::unique_ptr<GpuLlamaModel> GpuLlamaModel::random(const LlamaConfig& c, uint64_t seed, cuda::HalfType type) {
  require_cuda("GPU model");
  if (c.n_layers <= 0 || c.n_embd <= 0 || c.n_vocab <= 0)
    throw Error("GPU model: config '" + c.name + "' has no shapes");
  std::unique_ptr<GpuLlamaModel> m(new GpuLlamaModel());
  m->config_ = c;
  m->type_ = type;
  m->geometry_.n_layers = c.n_layers;
  m->geometry_.n_head = c.n_head;
  m->geometry_.n_head_kv = c.n_head_kv;
  m->geometry_.head_dim = c.head_dim;
  m->geometry_.model_name = c.name;
  m->geometry_.rope = Rope(c.head_dim, c.rope_theta, c.rope_layout, {}, c.rope_pos_scale);
  uint64_t s = seed;
  const bool bf16 = type == cuda::HalfType::BF16;
  auto make = [&](Matrix& mat, int64_t rows, int64_t cols) {
    mat.rows = rows;
    mat.cols = cols;
    mat.w = cuda::DeviceBuffer<uint16_t>(static_cast<size_t>(rows * cols));
    cuda::fill_uniform_half(mat.w.get(), rows * cols, ++s, 1.0f / std::sqrt(static_cast<float>(cols)), bf16);
  };
  const int q_dim = c.n_head * c.head_dim, kv_dim = c.kv_dim();
  make(m->token_embd_, c.n_vocab, c.n_embd);
  make(m->output_, c.n_vocab, c.n_embd);
  m->output_norm_ = constant_vector(c.n_embd, 1.0f);
  m->layers_.resize(static_cast<size_t>(c.n_layers));
  for (auto& L : m->layers_) {
    L.attn_norm = constant_vector(c.n_embd, 1.0f);
    L.ffn_norm = constant_vector(c.n_embd, 1.0f);
    make(L.wq, q_dim, c.n_embd);
    make(L.wk, kv_dim, c.n_embd);
    make(L.wv, kv_dim, c.n_embd);
    make(L.wo, c.n_embd, q_dim);
    make(L.w_gate, c.n_ff, c.n_embd);
    make(L.w_up, c.n_ff, c.n_embd);
    make(L.w_down, c.n_embd, c.n_ff);
    if (c.qkv_bias) {
      L.bq = constant_vector(q_dim, 0.0f);
      L.bk = constant_vector(kv_dim, 0.0f);
      L.bv = constant_vector(kv_dim, 0.0f);
    }
  }
  cuda::synchronize();
  return m;
}

size_t GpuLlamaModel::weight_bytes() const {
  size_t b = token_embd_.w.bytes() + output_.w.bytes() + output_norm_.bytes();
  for (const auto& L : layers_) {
    b += L.attn_norm.bytes() + L.ffn_norm.bytes() + L.bq.bytes() + L.bk.bytes() + L.bv.bytes();
    for (const Matrix* mat : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) b += mat->w.bytes();
  }
  return b;
}

void GpuLlamaModel::matmul(const Matrix& m, const float* x, int n, float* y) {
  const bool bf16 = type_ == cuda::HalfType::BF16;
  x16_.ensure(static_cast<size_t>(n) * m.cols);
  cuda::float_to_half(x, x16_.get(), static_cast<int64_t>(n) * m.cols, bf16);
  cuda::gemm_half_weights(type_, m.w.get(), m.rows, m.cols, x16_.get(), n, y);
}

std::vector<float> GpuLlamaModel::forward(const int32_t* tokens, const int32_t* positions, int n, GpuKvCache& cache,
                                          LlamaModel::Logits which) {
  const LlamaConfig& c = config_;
  if (n <= 0) throw Error("GPU forward: no tokens");
  for (int t = 0; t < n; ++t)
    if (tokens[t] < 0 || tokens[t] >= c.n_vocab)
      throw Error("token id " + std::to_string(tokens[t]) + " is outside the vocabulary (" + std::to_string(c.n_vocab) +
                  ")");
  const int E = c.n_embd, F = c.n_ff, q_dim = c.n_head * c.head_dim, kv_dim = c.kv_dim();
  const size_t N = static_cast<size_t>(n);
  x_.ensure(N * E);
  h_.ensure(N * E);
  q_.ensure(N * q_dim);
  k_.ensure(N * kv_dim);
  v_.ensure(N * kv_dim);
  attn_.ensure(N * q_dim);
  gate_.ensure(N * F);
  up_.ensure(N * F);
  ids_.ensure(N);
  cos_sin_.ensure(N * c.head_dim);
  cuda::copy_to_device(ids_.get(), tokens, N * sizeof(int32_t));
  const std::vector<float> cs = cos_sin_rows(geometry_.rope, positions, n);
  cuda::copy_to_device(cos_sin_.get(), cs.data(), cs.size() * sizeof(float));
  const bool bf16 = type_ == cuda::HalfType::BF16;
  const bool half_split = geometry_.rope.layout() == RopeLayout::HalfSplit;
  cuda::embed_rows(token_embd_.w.get(), E, ids_.get(), n, x_.get(), bf16);

  for (int l = 0; l < c.n_layers; ++l) {
    Layer& L = layers_[static_cast<size_t>(l)];
    cuda::rmsnorm_rows(x_.get(), L.attn_norm.get(), n, E, c.rms_eps, h_.get());
    matmul(L.wq, h_.get(), n, q_.get());
    cuda::gemm_half_weights(type_, L.wk.w.get(), L.wk.rows, L.wk.cols, x16_.get(), n, k_.get());  // same x16
    cuda::gemm_half_weights(type_, L.wv.w.get(), L.wv.rows, L.wv.cols, x16_.get(), n, v_.get());
    if (L.bq.size()) {
      cuda::add_bias_rows(q_.get(), L.bq.get(), n, q_dim);
      cuda::add_bias_rows(k_.get(), L.bk.get(), n, kv_dim);
      cuda::add_bias_rows(v_.get(), L.bv.get(), n, kv_dim);
    }
    cuda::rope_apply(q_.get(), n, c.n_head, c.head_dim, cos_sin_.get(), half_split);
    cache.append(l, k_.get(), v_.get(), positions, n, cos_sin_.get());
    cache.attend(l, q_.get(), positions, n, attn_.get());
    matmul(L.wo, attn_.get(), n, h_.get());
    cuda::add_inplace(x_.get(), h_.get(), static_cast<int64_t>(N) * E);

    cuda::rmsnorm_rows(x_.get(), L.ffn_norm.get(), n, E, c.rms_eps, h_.get());
    matmul(L.w_gate, h_.get(), n, gate_.get());
    cuda::gemm_half_weights(type_, L.w_up.w.get(), L.w_up.rows, L.w_up.cols, x16_.get(), n, up_.get());
    cuda::swiglu_inplace(gate_.get(), up_.get(), static_cast<int64_t>(N) * F);
    matmul(L.w_down, gate_.get(), n, h_.get());
    cuda::add_inplace(x_.get(), h_.get(), static_cast<int64_t>(N) * E);
  }

  if (which == LlamaModel::Logits::None) {
    cuda::synchronize();
    return {};
  }
  const int first = which == LlamaModel::Logits::Last ? n - 1 : 0;
  const int rows = n - first;
  cuda::rmsnorm_rows(x_.get() + static_cast<size_t>(first) * E, output_norm_.get(), rows, E, c.rms_eps, h_.get());
  logits_.ensure(static_cast<size_t>(rows) * c.n_vocab);
  matmul(tied_output_ ? token_embd_ : output_, h_.get(), rows, logits_.get());
  return cuda::download(logits_.get(), static_cast<size_t>(rows) * c.n_vocab);
}

}  // namespace cvq::gpu
