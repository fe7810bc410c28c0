#include "commvq/commvq_cache.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cpu/commvq_scores.h"
#include "kernels/cpu/commvq_values.h"
#include "kv/kv_spec.h"

namespace cvq {
namespace {
constexpr int64_t kOffsetRows = 256;  // cos/sin by angle addition within runs of this many positions
constexpr int64_t kTokenChunk = 512;  // scratch bound for the score kernels

void put12(std::vector<uint8_t>& b, int64_t i, uint16_t v) {
  const int64_t bit = 12 * i, byte = bit >> 3;
  if ((bit & 7) == 0) {
    b[byte] = static_cast<uint8_t>(v & 0xFF);
    b[byte + 1] = static_cast<uint8_t>((b[byte + 1] & 0xF0) | (v >> 8));
  } else {
    b[byte] = static_cast<uint8_t>((b[byte] & 0x0F) | ((v & 0xF) << 4));
    b[byte + 1] = static_cast<uint8_t>(v >> 4);
  }
}

uint16_t get12(const uint8_t* b, int64_t i) {
  const int64_t bit = 12 * i, byte = bit >> 3;
  if ((bit & 7) == 0) return static_cast<uint16_t>(b[byte] | ((b[byte + 1] & 0x0F) << 8));
  return static_cast<uint16_t>((b[byte] >> 4) | (b[byte + 1] << 4));
}

size_t packed12_bytes(int64_t n_codes) { return static_cast<size_t>((12 * n_codes + 7) / 8); }
}  // namespace

CommvqOptions CommvqOptions::parse(const KvSpec& s, const KvGeometry& g) {
  s.allow_only({"bits", "codebook", "window", "sink", "mode", "stages", "scores", "refine", "compress"});
  CommvqOptions o;
  o.bits = s.get_int("bits", 2);
  if (o.bits != 1 && o.bits != 2) throw Error("KV method spec '" + s.text() + "': bits must be 1 or 2");
  o.codebook_path = s.get("codebook", "");
  o.stages = s.get_int("stages", 0);
  o.policy.window = s.get_int("window", 128);
  o.policy.sink = s.get_int("sink", 0);
  if (o.policy.window < 1 || o.policy.sink < 0)
    throw Error("KV method spec '" + s.text() + "': window must be >= 1 and sink >= 0");
  // Ablation: compress only one side; the other stays in fp16 like the window.
  const std::string compress = s.get("compress", "both");
  if (compress != "both" && compress != "keys" && compress != "values")
    throw Error("KV method spec '" + s.text() + "': compress must be both, keys or values");
  o.policy.key_rule = compress == "values" ? WindowRule::Never : WindowRule::Blocks;
  o.policy.value_rule = compress == "keys" ? WindowRule::Never : WindowRule::Blocks;
  o.policy.keys_pre_rope = true;
  o.mode = parse_kv_exec_mode(s);
  const std::string scores = s.get("scores", "decode");
  if (scores != "decode" && scores != "table")
    throw Error("KV method spec '" + s.text() + "': scores must be decode or table");
  o.score_tables = scores == "table";
  o.refine_sweeps = s.get_int("refine", -1);
  if (o.refine_sweeps < -1 || o.refine_sweeps > 100)
    throw Error("KV method spec '" + s.text() + "': refine must be between 0 and 100 sweeps");
  (void)g;
  return o;
}

CommvqCache::CommvqCache(KvGeometry g, CommvqOptions opt)
    : WindowedCache(g, opt.policy, opt.mode), opt_(std::move(opt)) {
  const int D = geo_.kv_dim();
  if (!opt_.codebook_path.empty()) {
    codebook_ = CommvqCodebook::load_shared(opt_.codebook_path);
    codebook_->check_compatible(geo_, opt_.codebook_path);
    if (codebook_->key_bits != opt_.bits) {
      fail_file(opt_.codebook_path, "codebook is " + std::to_string(codebook_->key_bits) +
                                        "-bit but the spec asks for bits=" + std::to_string(opt_.bits));
    }
    if (opt_.stages != 0 && opt_.stages != codebook_->stages) {
      fail_file(opt_.codebook_path, "codebook has " + std::to_string(codebook_->stages) +
                                        " key stages, the spec asks for " + std::to_string(opt_.stages));
    }
    stages_ = codebook_->stages;
    value_code_bits_ = codebook_->values[0].shape().code_bits();
  } else {
    stages_ = opt_.stages > 0 ? opt_.stages : commvq_key_stages(opt_.bits, geo_.head_dim);
    value_code_bits_ = D * opt_.bits;
  }
  layers_.resize(geo_.n_layers);
  offsets_.resize(static_cast<size_t>(kOffsetRows) * geo_.head_dim);
  rope_cos_sin_table(geo_.rope, 0, kOffsetRows, offsets_.data());
}

size_t CommvqCache::fixed_bytes() const {
  return codebook_ ? codebook_->param_bytes() : commvq_param_bytes(geo_, opt_.bits, stages_, true);
}

std::string CommvqCache::spec() const {
  std::string s = "commvq:bits=" + std::to_string(opt_.bits);
  if (!opt_.codebook_path.empty()) s += ",codebook=" + opt_.codebook_path;
  s += ",window=" + std::to_string(opt_.policy.window);
  if (opt_.policy.sink) s += ",sink=" + std::to_string(opt_.policy.sink);
  if (opt_.score_tables) s += ",scores=table";
  if (opt_.refine_sweeps >= 0) s += ",refine=" + std::to_string(opt_.refine_sweeps);
  if (opt_.policy.key_rule == WindowRule::Never) s += ",compress=values";
  if (opt_.policy.value_rule == WindowRule::Never) s += ",compress=keys";
  return s + ",mode=" + kv_exec_mode_name(opt_.mode);
}

int CommvqCache::value_refine_sweeps(int layer) const {
  return opt_.refine_sweeps >= 0 ? opt_.refine_sweeps : codebook_->values[layer].refine_sweeps;
}

void CommvqCache::require_codebook() const {
  if (!codebook_)
    throw Error("KV method '" + spec() + "' needs codebook=FILE to store tokens (train one with `commvq-bench train`)");
}

void CommvqCache::compress_keys(int layer, int64_t first, int n, const float* k, const int32_t*) {
  require_codebook();
  Layer& L = layers_[layer];
  if (first != L.n_keys) throw Error("commvq cache: keys compressed out of order");
  const int nkv = geo_.n_head_kv, R = stages_;
  std::vector<float> norms(n);
  std::vector<uint16_t> codes(static_cast<size_t>(n) * nkv * R);
  codebook_->keys[layer].encode(k, n, norms.data(), codes.data());
  const int64_t base = L.n_keys * nkv * R;
  L.key_codes.resize(packed12_bytes(base + static_cast<int64_t>(n) * nkv * R), 0);
  for (size_t i = 0; i < codes.size(); ++i) put12(L.key_codes, base + static_cast<int64_t>(i), codes[i]);
  for (int t = 0; t < n; ++t) L.key_norms.push_back(float_to_fp16(norms[t]));
  L.n_keys += n;
}

void CommvqCache::compress_values(int layer, int64_t first, int n, const float* v, const int32_t*) {
  require_codebook();
  Layer& L = layers_[layer];
  if (first != L.n_values) throw Error("commvq cache: values compressed out of order");
  const ValueCodec& codec = codebook_->values[layer];
  const size_t cb = static_cast<size_t>(codec.shape().code_bytes());
  const size_t old = L.value_codes.size();
  L.value_codes.resize(old + cb * n);
  L.value_p.resize(L.value_p.size() + n);
  codec.encode(v, n, L.value_codes.data() + old, L.value_p.data() + L.n_values, value_refine_sweeps(layer));
  L.n_values += n;
}

void CommvqCache::unpack_key_codes(const Layer& L, int kv_head, int64_t t0, int64_t t1, uint16_t* out) const {
  const int nkv = geo_.n_head_kv, R = stages_;
  for (int64_t t = t0; t < t1; ++t)
    for (int j = 0; j < R; ++j) out[(t - t0) * R + j] = get12(L.key_codes.data(), (t * nkv + kv_head) * R + j);
}

void CommvqCache::decode_keys(int layer, int64_t first, int n, float* out) const {
  const Layer& L = layers_[layer];
  const int nkv = geo_.n_head_kv, R = stages_;
  std::vector<uint16_t> codes(static_cast<size_t>(n) * nkv * R);
  for (int64_t i = 0; i < static_cast<int64_t>(codes.size()); ++i)
    codes[i] = get12(L.key_codes.data(), first * nkv * R + i);
  std::vector<float> norms(n);
  for (int t = 0; t < n; ++t) norms[t] = fp16_to_float(L.key_norms[first + t]);
  codebook_->keys[layer].decode(codes.data(), norms.data(), n, out);
}

void CommvqCache::decode_values(int layer, int64_t first, int n, float* out) const {
  const Layer& L = layers_[layer];
  const ValueCodec& codec = codebook_->values[layer];
  codec.decode(L.value_codes.data() + first * codec.shape().code_bytes(), L.value_p.data() + first, n, out);
}

void CommvqCache::cos_sin_rows(const int32_t* positions, int64_t n, float* out) const {
  const int d = geo_.head_dim;
  std::vector<float> base(d);
  for (int64_t s = 0; s < n;) {
    int64_t run = 1;
    while (s + run < n && run < kOffsetRows && positions[s + run] == positions[s] + run) ++run;
    if (run == 1) {
      rope_cos_sin_table(geo_.rope, positions + s, 1, out + s * d);
    } else {
      rope_cos_sin_table(geo_.rope, positions[s], 1, base.data());
      commvq_block_cos_sin(base.data(), offsets_.data(), run, d, out + s * d);
    }
    s += run;
  }
}

void CommvqCache::native_scores(int layer, int kv_head, const float* q, int rows, float scale, int64_t t0, int64_t t1,
                                float* scores, int64_t ld) const {
  const Layer& L = layers_[layer];
  const int d = geo_.head_dim, R = stages_;
  const KeyCodebook& cb = codebook_->keys[layer].heads[kv_head];
  const int32_t* pos = compressed_positions(layer);
  const float factor = scale * std::sqrt(static_cast<float>(d));  // the kernels include 1/sqrt(d)
  std::vector<float> q_pairs(static_cast<size_t>(rows) * d);
  to_pair_split(q, rows, d, geo_.rope.layout(), q_pairs.data());
  if (!cb.structured()) {
    // Plain-VQ ablation: no commutativity, so decode each key, rotate it, dot.
    std::vector<uint16_t> codes(static_cast<size_t>(R));
    std::vector<float> k(d), cs(d), kr(d);
    for (int64_t t = t0; t < t1; ++t) {
      unpack_key_codes(L, kv_head, t, t + 1, codes.data());
      cb.decode(codes.data(), k.data());
      const float nrm = fp16_to_float(L.key_norms[t]);
      const float* mu = codebook_->keys[layer].centered() ? codebook_->keys[layer].mean.data() + kv_head * d : nullptr;
      for (int i = 0; i < d; ++i) k[i] = k[i] * nrm + (mu ? mu[i] : 0.0f);
      geo_.rope.apply(k.data(), 1, pos[t]);
      for (int r = 0; r < rows; ++r) {
        double dot = 0;
        for (int i = 0; i < d; ++i) dot += static_cast<double>(q[static_cast<int64_t>(r) * d + i]) * k[i];
        scores[r * ld + (t - t0)] = static_cast<float>(dot) * scale;
      }
    }
    return;
  }
  std::vector<float> table;
  const bool use_table = opt_.score_tables;
  if (use_table) {
    table.resize(commvq_query_table_floats(R, d, rows));
    commvq_query_table(cb.params(), R, d, q_pairs.data(), rows, table.data());
  }
  std::vector<float> mean_ab;  // centered keys: the q·RoPE_m(μ) coefficients (mean_score_coefficients)
  if (codebook_->keys[layer].centered()) mean_ab = mean_score_coefficients(layer, kv_head, q_pairs.data(), rows);
  std::vector<uint16_t> codes;
  std::vector<float> norms, cs;
  for (int64_t c0 = t0; c0 < t1; c0 += kTokenChunk) {
    const int64_t c1 = std::min(t1, c0 + kTokenChunk), n = c1 - c0;
    codes.resize(static_cast<size_t>(n) * R);
    norms.resize(n);
    cs.resize(static_cast<size_t>(n) * d);
    unpack_key_codes(L, kv_head, c0, c1, codes.data());
    for (int64_t t = 0; t < n; ++t) norms[t] = fp16_to_float(L.key_norms[c0 + t]);
    cos_sin_rows(pos + c0, n, cs.data());
    float* out = scores + (c0 - t0);
    if (use_table) {
      commvq_scores_codes(table.data(), R, d, rows, codes.data(), R, norms.data(), cs.data(), n, out, ld);
    } else {
      commvq_scores_decode(cb.params(), R, d, q_pairs.data(), rows, codes.data(), R, norms.data(), cs.data(), n, out,
                           ld);
    }
    // The kernels' scores carry 1/sqrt(d); `factor` below turns them into `scale`.
    if (!mean_ab.empty())
      add_mean_scores(mean_ab, rows, cs.data(), n, 1.0f / std::sqrt(static_cast<float>(d)), out, ld);
  }
  if (std::abs(factor - 1.0f) > 1e-6f) {
    for (int r = 0; r < rows; ++r)
      for (int64_t t = t0; t < t1; ++t) scores[r * ld + (t - t0)] *= factor;
  }
}

// Centered keys k = μ + n·Σ C: the score gains q·RoPE_m(μ). With pairs (x_f, y_f) rotated by θ_f = m·ω_f,
//   q·R_m μ = Σ_f cos θ_f (qx μx + qy μy) + sin θ_f (qy μx − qx μy),
// so two d/2-vectors per query row (A then B, rows × d floats) and d flops per token.
std::vector<float> CommvqCache::mean_score_coefficients(int layer, int kv_head, const float* q_pairs, int rows) const {
  const int d = geo_.head_dim, h = d / 2;
  std::vector<float> mu(d), ab(static_cast<size_t>(rows) * d);
  to_pair_split(codebook_->keys[layer].mean.data() + static_cast<int64_t>(kv_head) * d, 1, d, geo_.rope.layout(),
                mu.data());
  for (int r = 0; r < rows; ++r) {
    const float* q = q_pairs + static_cast<int64_t>(r) * d;
    for (int f = 0; f < h; ++f) {
      ab[r * d + f] = q[f] * mu[f] + q[h + f] * mu[h + f];
      ab[r * d + h + f] = q[h + f] * mu[f] - q[f] * mu[h + f];
    }
  }
  return ab;
}

// scores[r][t] += unit · Σ_f cos_f·A_f + sin_f·B_f over n tokens whose cos/sin rows are cs (n × d).
void CommvqCache::add_mean_scores(const std::vector<float>& ab, int rows, const float* cs, int64_t n, float unit,
                                  float* scores, int64_t ld) const {
  const int d = geo_.head_dim;
  for (int r = 0; r < rows; ++r) {
    const float* rab = ab.data() + static_cast<int64_t>(r) * d;
    for (int64_t t = 0; t < n; ++t) {
      const float* c = cs + t * d;
      float s = 0;
      for (int f = 0; f < d; ++f) s += c[f] * rab[f];
      scores[r * ld + t] += s * unit;
    }
  }
}

void CommvqCache::native_values(int layer, int kv_head, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1,
                                float* out) const {
  const Layer& L = layers_[layer];
  const ValueCodec& codec = codebook_->values[layer];
  const int d = geo_.head_dim, cb = codec.shape().code_bytes();
  std::vector<float> tmp(static_cast<size_t>(rows) * d);
  commvq_values_attend(L.value_codes.data() + t0 * cb, cb, L.value_p.data() + t0, t1 - t0, codec.shape().code_bits(), p,
                       ld, rows, codec.codebook.data(), codec.scale.data(), codec.dim(), kv_head, d, tmp.data(), d);
  for (size_t i = 0; i < tmp.size(); ++i) out[i] += tmp[i];
}

size_t CommvqCache::compressed_bytes(int layer) const {
  const Layer& L = layers_[layer];
  return L.key_codes.size() + L.key_norms.size() * 2 + L.value_codes.size() + L.value_p.size() * 2;
}

size_t CommvqCache::compressed_bytes_for(int64_t n_keys, int64_t n_values) const {
  const int64_t value_bytes = (value_code_bits_ + 7) / 8;
  return packed12_bytes(n_keys * geo_.n_head_kv * stages_) + static_cast<size_t>(2 * n_keys) +
         static_cast<size_t>(n_values * (value_bytes + 2));
}

void CommvqCache::clear_compressed() {
  for (auto& L : layers_) L = Layer{};
}

}  // namespace cvq
