#include "model/llama_model.h"

#include <algorithm>
#include <exception>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/ggml_arith.h"
#include "kernels/cpu/norm_act.h"
#include "kernels/cpu/quant_blocks.h"
#include "model/hf_checkpoint.h"

namespace cvq {
namespace {

std::vector<float> load_vector(const GgufFile& f, const std::string& name, int64_t expect) {
  const GgufTensorInfo& t = f.tensor(name);
  if (t.n_elements != expect) {
    fail_file(f.path(), "tensor '" + name + "' has " + std::to_string(t.n_elements) + " elements, expected " +
                            std::to_string(expect));
  }
  if (!ggml_type_info(t.type).supported) {
    fail_file(f.path(), "tensor '" + name + "' has unsupported type " + ggml_type_name(static_cast<uint32_t>(t.type)));
  }
  std::vector<float> out(static_cast<size_t>(expect));
  dequantize_row(t.type, t.data, out.data(), expect);
  return out;
}

WeightMatrix load_matrix(const GgufFile& f, const std::string& name, int64_t rows, int64_t cols) {
  const GgufTensorInfo& t = f.tensor(name);
  if (t.dims.size() != 2 || t.dims[0] != cols || t.dims[1] != rows) {
    std::string got;
    for (auto d : t.dims) got += (got.empty() ? "" : " x ") + std::to_string(d);
    fail_file(f.path(), "tensor '" + name + "' has shape [" + got + "], expected [" + std::to_string(cols) + " x " +
                            std::to_string(rows) + "]");
  }
  try {
    return WeightMatrix(t);
  } catch (const Error& e) {
    fail_file(f.path(), e.what());
  }
}

// Batched decode: sequence t's K/V go into its own cache, and its query attends there. The caches
// are independent, so the sequences run in parallel (a cache's own parallel loops then run inline on
// its thread); each result is what the sequence computes alone. Pending compression (a prompt's, at
// the first step after a shared prefill) is done first, one cache at a time with every thread, not
// inside the per-sequence loop where two CommVQ caches can land on one thread while the other
// idles. An exception in any sequence is rethrown here, the first one by sequence order.
void append_and_attend_each(const std::vector<KvCache*>& caches, int layer, const float* k, const float* v,
                            const float* q, const int32_t* positions, int kv_dim, int q_dim, float* attn) {
  const int64_t n = static_cast<int64_t>(caches.size());
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  for (size_t t = 0; t < caches.size(); ++t) {
    try {
      caches[t]->settle_layer(layer);
    } catch (...) {
      errors[t] = std::current_exception();
    }
  }
  ThreadPool::global().parallel_for(n, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      if (errors[static_cast<size_t>(t)]) continue;
      try {
        caches[static_cast<size_t>(t)]->append(layer, k + t * kv_dim, v + t * kv_dim, positions + t, 1);
        caches[static_cast<size_t>(t)]->attend(layer, q + t * q_dim, positions + t, 1, attn + t * q_dim);
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
      }
    }
  });
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

void add_bias(float* x, const std::vector<float>& b, int n) {
  if (b.empty()) return;
  const size_t dim = b.size();
  for (int t = 0; t < n; ++t)
    for (size_t i = 0; i < dim; ++i) x[t * dim + i] += b[i];
}

MatmulMode& default_matmul_mode() {
  static MatmulMode mode = MatmulMode::Fp32;
  return mode;
}

}  // namespace

void LlamaModel::set_default_matmul_mode(MatmulMode mode) { default_matmul_mode() = mode; }

namespace {
std::string& default_chat_template() {
  static std::string name;
  return name;
}
}  // namespace

void LlamaModel::set_default_chat_template(const std::string& name) {
  if (!name.empty() && name != "chatml" && name != "llama3" && name != "llama2") {
    throw Error("chat template '" + name + "' is not one of chatml, llama3, llama2");
  }
  default_chat_template() = name;
}

std::string LlamaModel::chat_template() const {
  if (!default_chat_template().empty()) return default_chat_template();
  return gguf_->opt_string("tokenizer.chat_template").value_or("");
}

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& path) {
  std::unique_ptr<LlamaModel> m(new LlamaModel());
  m->gguf_ = is_hf_checkpoint(path) ? open_hf_checkpoint(path) : std::make_unique<GgufFile>(path);
  const GgufFile& f = *m->gguf_;
  m->config_ = LlamaConfig::from_gguf(f);
  const LlamaConfig& c = m->config_;
  m->tokenizer_ = std::make_unique<Tokenizer>(tokenizer_data_from_gguf(f));
  if (static_cast<int>(m->tokenizer_->vocab_size()) != c.n_vocab) {
    fail_file(path, "tokenizer has " + std::to_string(m->tokenizer_->vocab_size()) + " tokens but the model has " +
                        std::to_string(c.n_vocab));
  }
  const int q_dim = c.n_head * c.head_dim, kv_dim = c.kv_dim();
  m->token_embd_ = load_matrix(f, "token_embd.weight", c.n_vocab, c.n_embd);
  m->output_ = f.find_tensor("output.weight") ? load_matrix(f, "output.weight", c.n_vocab, c.n_embd) : m->token_embd_;
  m->output_norm_ = load_vector(f, "output_norm.weight", c.n_embd);
  if (f.find_tensor("rope_freqs.weight")) m->rope_freq_factors_ = load_vector(f, "rope_freqs.weight", c.head_dim / 2);
  m->layers_.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer& L = m->layers_[l];
    L.attn_norm = load_vector(f, p + "attn_norm.weight", c.n_embd);
    L.ffn_norm = load_vector(f, p + "ffn_norm.weight", c.n_embd);
    L.wq = load_matrix(f, p + "attn_q.weight", q_dim, c.n_embd);
    L.wk = load_matrix(f, p + "attn_k.weight", kv_dim, c.n_embd);
    L.wv = load_matrix(f, p + "attn_v.weight", kv_dim, c.n_embd);
    L.wo = load_matrix(f, p + "attn_output.weight", c.n_embd, q_dim);
    L.w_gate = load_matrix(f, p + "ffn_gate.weight", c.n_ff, c.n_embd);
    L.w_up = load_matrix(f, p + "ffn_up.weight", c.n_ff, c.n_embd);
    L.w_down = load_matrix(f, p + "ffn_down.weight", c.n_embd, c.n_ff);
    if (c.qkv_bias) {
      L.bq = load_vector(f, p + "attn_q.bias", q_dim);
      L.bk = load_vector(f, p + "attn_k.bias", kv_dim);
      L.bv = load_vector(f, p + "attn_v.bias", kv_dim);
    }
  }
  m->set_matmul_mode(default_matmul_mode());
  return m;
}

KvGeometry LlamaModel::kv_geometry() const {
  KvGeometry g;
  g.n_layers = config_.n_layers;
  g.n_head = config_.n_head;
  g.n_head_kv = config_.n_head_kv;
  g.head_dim = config_.head_dim;
  g.model_name = config_.name;
  g.model_path = gguf_->path();
  g.rope = Rope(config_.head_dim, config_.rope_theta, config_.rope_layout, rope_freq_factors_, config_.rope_pos_scale);
  if (llamacpp_) g.rope.use_llamacpp_arithmetic();
  return g;
}

size_t LlamaModel::weight_bytes() const {
  size_t b = 0;
  for (const auto& t : gguf_->tensors()) b += t.n_bytes;
  return b;
}

std::vector<float> LlamaModel::dense_attn_output(int layer) const {
  if (layer < 0 || layer >= config_.n_layers) throw Error("layer " + std::to_string(layer) + " is out of range");
  const WeightMatrix& w = layers_[layer].wo;
  std::vector<float> out(static_cast<size_t>(w.rows() * w.cols()));
  for (int64_t r = 0; r < w.rows(); ++r) w.dequantize_row(r, out.data() + r * w.cols());
  return out;
}

void LlamaModel::set_matmul_mode(MatmulMode mode) {
  if (mode == MatmulMode::Bf16) {
    std::vector<const WeightMatrix*> all = {&output_};
    for (const Layer& L : layers_) {
      for (const WeightMatrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) all.push_back(w);
    }
    for (const WeightMatrix* w : all) {
      if (!w->supports_bf16_gemm()) {
        throw Error(gguf_->path() + ": matmul=bf16 needs matrices whose column count is a multiple of 32; tensor '" +
                    w->name() + "' has " + std::to_string(w->cols()));
      }
    }
  }
  matmul_mode_ = mode;
}

void LlamaModel::use_llamacpp_arithmetic() {
  Rope check(config_.head_dim, config_.rope_theta, config_.rope_layout, rope_freq_factors_, config_.rope_pos_scale);
  check.use_llamacpp_arithmetic();  // throws for RoPE variants the mode does not reproduce
  auto supported = [](const WeightMatrix& w) { return w.type() == GgmlType::Q4_1 || w.type() == GgmlType::Q8_0; };
  std::vector<const WeightMatrix*> all = {&output_};
  for (const Layer& L : layers_) {
    for (const WeightMatrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) all.push_back(w);
  }
  for (const WeightMatrix* w : all) {
    if (!supported(*w)) {
      throw Error(gguf_->path() + ": llama.cpp arithmetic reproduces q4_1 and q8_0 matrices; tensor '" + w->name() +
                  "' is " + ggml_type_name(static_cast<uint32_t>(w->type())));
    }
  }
  if (config_.qkv_bias) throw Error(gguf_->path() + ": llama.cpp arithmetic is not reproduced for QKV biases");
  llamacpp_ = true;
}

std::vector<float> LlamaModel::forward(const int32_t* tokens, const int32_t* positions, int n, KvCache& cache,
                                       Logits which, const LayerObserver* observer) const {
  return forward_rows(tokens, positions, n, {&cache}, which, observer);
}

std::vector<float> LlamaModel::forward_batch(const int32_t* tokens, const int32_t* positions,
                                             const std::vector<KvCache*>& caches) const {
  if (caches.empty()) throw Error("forward_batch: no sequences");
  if (llamacpp_) throw Error("forward_batch: llama.cpp arithmetic runs one sequence at a time");
  // Below WeightMatrix's GEMM threshold every product takes the matrix-vector kernels, row by row the
  // same arithmetic as a single token's; larger batches go in slices that stay below it.
  constexpr size_t kMaxRows = static_cast<size_t>(WeightMatrix::kGemvMaxTokens);
  if (caches.size() <= kMaxRows) {
    return forward_rows(tokens, positions, static_cast<int>(caches.size()), caches, Logits::All, nullptr);
  }
  std::vector<float> logits;
  for (size_t b = 0; b < caches.size(); b += kMaxRows) {
    const size_t e = std::min(caches.size(), b + kMaxRows);
    const std::vector<KvCache*> slice(caches.begin() + static_cast<std::ptrdiff_t>(b),
                                      caches.begin() + static_cast<std::ptrdiff_t>(e));
    const std::vector<float> part =
        forward_rows(tokens + b, positions + b, static_cast<int>(e - b), slice, Logits::All, nullptr);
    logits.insert(logits.end(), part.begin(), part.end());
  }
  return logits;
}

std::vector<float> LlamaModel::forward_rows(const int32_t* tokens, const int32_t* positions, int n,
                                            const std::vector<KvCache*>& caches, Logits which,
                                            const LayerObserver* observer) const {
  const LlamaConfig& c = config_;
  const int E = c.n_embd, F = c.n_ff, q_dim = c.n_head * c.head_dim, kv_dim = c.kv_dim();
  KvCache& cache = *caches.front();
  const bool per_token = caches.size() > 1;
  if (per_token && static_cast<int>(caches.size()) != n) throw Error("forward: one cache per token, or one for all");
  const Rope& rope = cache.geometry().rope;
  const MatmulMode mm = matmul_mode_;
  for (KvCache* kc : caches) kc->set_bf16_prefill_attention(mm == MatmulMode::Bf16);
  for (int t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.n_vocab) {
      throw Error("token id " + std::to_string(tokens[t]) + " is outside the vocabulary (" + std::to_string(c.n_vocab) +
                  ")");
    }
  }
  std::vector<float> x(static_cast<size_t>(n) * E), h(x.size()), q(static_cast<size_t>(n) * q_dim),
      k(static_cast<size_t>(n) * kv_dim), v(k.size()), attn(q.size()), gate(static_cast<size_t>(n) * F),
      up(gate.size());
  for (int t = 0; t < n; ++t) token_embd_.dequantize_row(tokens[t], x.data() + static_cast<size_t>(t) * E);

  if (llamacpp_) {
    if (!cache.llamacpp_attention() || !rope.llamacpp_arithmetic()) {
      throw Error(
          "llama.cpp arithmetic needs a cache made for it (kv method fp16:arith=llamacpp, after "
          "use_llamacpp_arithmetic)");
    }
    return forward_llamacpp(x, positions, n, cache, which);
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& L = layers_[l];
    rmsnorm_rows(x.data(), L.attn_norm.data(), n, E, c.rms_eps, h.data());
    L.wq.matmul(h.data(), n, q.data(), mm);
    L.wk.matmul(h.data(), n, k.data(), mm);
    L.wv.matmul(h.data(), n, v.data(), mm);
    add_bias(q.data(), L.bq, n);
    add_bias(k.data(), L.bk, n);
    add_bias(v.data(), L.bv, n);
    for (int t = 0; t < n; ++t) rope.apply(q.data() + static_cast<size_t>(t) * q_dim, c.n_head, positions[t]);
    if (observer && *observer) (*observer)(l, q.data(), k.data(), v.data(), positions, n);
    if (per_token) {
      append_and_attend_each(caches, l, k.data(), v.data(), q.data(), positions, kv_dim, q_dim, attn.data());
    } else {
      cache.append(l, k.data(), v.data(), positions, n);
      cache.attend(l, q.data(), positions, n, attn.data());
    }
    L.wo.matmul(attn.data(), n, h.data(), mm);
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];

    rmsnorm_rows(x.data(), L.ffn_norm.data(), n, E, c.rms_eps, h.data());
    L.w_gate.matmul(h.data(), n, gate.data(), mm);
    L.w_up.matmul(h.data(), n, up.data(), mm);
    swiglu_inplace(gate.data(), up.data(), static_cast<int64_t>(n) * F);
    L.w_down.matmul(gate.data(), n, h.data(), mm);
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
  }

  if (which == Logits::None) return {};
  const int first = which == Logits::Last ? n - 1 : 0;
  const int rows = n - first;
  rmsnorm_rows(x.data() + static_cast<size_t>(first) * E, output_norm_.data(), rows, E, c.rms_eps, h.data());
  std::vector<float> logits(static_cast<size_t>(rows) * c.n_vocab);
  output_.matmul(h.data(), rows, logits.data(), mm);
  return logits;
}

std::vector<float> LlamaModel::forward_llamacpp(std::vector<float>& x, const int32_t* positions, int n, KvCache& cache,
                                                Logits which) const {
  const LlamaConfig& c = config_;
  const int E = c.n_embd, F = c.n_ff, q_dim = c.n_head * c.head_dim, kv_dim = c.kv_dim();
  const Rope& rope = cache.geometry().rope;
  const float eps = static_cast<float>(c.rms_eps);
  std::vector<float> h(x.size()), q(static_cast<size_t>(n) * q_dim), k(static_cast<size_t>(n) * kv_dim), v(k.size()),
      attn(q.size()), gate(static_cast<size_t>(n) * F), up(gate.size());
  auto norm_rows = [&](const float* src, const std::vector<float>& w, int rows, float* dst) {
    for (int t = 0; t < rows; ++t)
      ggml_rms_norm(src + static_cast<int64_t>(t) * E, w.data(), E, eps, dst + static_cast<int64_t>(t) * E);
  };
  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& L = layers_[l];
    norm_rows(x.data(), L.attn_norm, n, h.data());
    L.wq.matmul_llamacpp(h.data(), n, q.data());
    L.wk.matmul_llamacpp(h.data(), n, k.data());
    L.wv.matmul_llamacpp(h.data(), n, v.data());
    for (int t = 0; t < n; ++t) rope.apply(q.data() + static_cast<size_t>(t) * q_dim, c.n_head, positions[t]);
    cache.append(l, k.data(), v.data(), positions, n);
    cache.attend(l, q.data(), positions, n, attn.data());
    L.wo.matmul_llamacpp(attn.data(), n, h.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
    norm_rows(x.data(), L.ffn_norm, n, h.data());
    L.w_gate.matmul_llamacpp(h.data(), n, gate.data());
    L.w_up.matmul_llamacpp(h.data(), n, up.data());
    ggml_swiglu(gate.data(), up.data(), static_cast<int64_t>(n) * F, gate.data());
    L.w_down.matmul_llamacpp(gate.data(), n, h.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
  }
  if (which == Logits::None) return {};
  const int first = which == Logits::Last ? n - 1 : 0;
  const int rows = n - first;
  norm_rows(x.data() + static_cast<size_t>(first) * E, output_norm_, rows, h.data());
  std::vector<float> logits(static_cast<size_t>(rows) * c.n_vocab);
  output_.matmul_llamacpp(h.data(), rows, logits.data());
  return logits;
}

}  // namespace cvq
