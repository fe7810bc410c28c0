#include "kv/kivi_cache.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cpu/kivi_attention.h"
#include "kv/kv_spec.h"
#include "kv/minmax_quant.h"

namespace cvq {
namespace {
WindowPolicy kivi_policy(const KiviOptions& o) {
  WindowPolicy p;
  p.window = o.window;
  p.sink = o.sink;
  p.key_rule = WindowRule::Blocks;
  p.value_rule = WindowRule::KeepLast;
  p.keys_pre_rope = false;
  return p;
}
}  // namespace

KiviOptions KiviOptions::parse(const KvSpec& spec, const KvGeometry& g) {
  spec.allow_only({"k", "v", "group", "window", "sink", "mode"});
  KiviOptions o;
  o.key_bits = spec.get_int("k", 2);
  o.value_bits = spec.get_int("v", 2);
  o.group = spec.get_int("group", 32);
  o.window = spec.get_int("window", 128);
  o.sink = spec.get_int("sink", 0);
  o.mode = parse_kv_exec_mode(spec);
  auto bad = [&](const std::string& why) { throw Error("KV method spec '" + spec.text() + "': " + why); };
  for (int b : {o.key_bits, o.value_bits}) {
    if (b != 1 && b != 2 && b != 4) bad("k and v must be 1, 2 or 4 bits (got " + std::to_string(b) + ")");
  }
  if (o.group <= 0) bad("group must be positive");
  if (o.sink < 0) bad("sink must be >= 0");
  if (g.head_dim % o.group != 0) {
    bad("group=" + std::to_string(o.group) + " must divide the head dim " + std::to_string(g.head_dim) +
        " (values are grouped along channels)");
  }
  if (o.window <= 0 || o.window % o.group != 0) {
    bad("window=" + std::to_string(o.window) + " must be a positive multiple of group=" + std::to_string(o.group));
  }
  return o;
}

KiviCache::KiviCache(KvGeometry g, KiviOptions o)
    : WindowedCache(std::move(g), kivi_policy(o), o.mode),
      opt_(o),
      k_words_(packed_words(o.group, o.key_bits)),
      v_words_(packed_words(o.group, o.value_bits)),
      store_(geo_.n_layers, Store(geo_.n_head_kv)) {}

std::string KiviCache::spec() const {
  std::string s = "kivi:k=" + std::to_string(opt_.key_bits) + ",v=" + std::to_string(opt_.value_bits) +
                  ",group=" + std::to_string(opt_.group) + ",window=" + std::to_string(opt_.window);
  if (opt_.sink) s += ",sink=" + std::to_string(opt_.sink);
  if (opt_.mode == KvExecMode::Simulated) s += ",mode=simulated";
  return s;
}

void KiviCache::compress_keys(int layer, int64_t first, int n, const float* k, const int32_t*) {
  const int D = geo_.kv_dim(), d = geo_.head_dim, G = opt_.group;
  if (first % G != 0 || n % G != 0) throw Error("kivi: key blocks must be whole groups (internal error)");
  const int64_t groups = n / G;
  for (int h = 0; h < geo_.n_head_kv; ++h) {
    HeadStore& s = store_[layer][h];
    const size_t p0 = s.k_scale.size();
    s.k_codes.resize((p0 + static_cast<size_t>(groups) * d) * k_words_);
    s.k_scale.resize(p0 + static_cast<size_t>(groups) * d);
    s.k_zero.resize(s.k_scale.size());
    for (int64_t g = 0; g < groups; ++g) {
      for (int c = 0; c < d; ++c) {
        const size_t idx = p0 + static_cast<size_t>(g) * d + c;
        minmax_quantize_pack(k + g * G * D + h * d + c, D, G, opt_.key_bits, s.k_codes.data() + idx * k_words_,
                             &s.k_scale[idx], &s.k_zero[idx]);
      }
    }
  }
}

void KiviCache::compress_values(int layer, int64_t, int n, const float* v, const int32_t*) {
  const int D = geo_.kv_dim(), d = geo_.head_dim, G = opt_.group, ng = d / G;
  for (int h = 0; h < geo_.n_head_kv; ++h) {
    HeadStore& s = store_[layer][h];
    const size_t p0 = s.v_scale.size();
    s.v_codes.resize((p0 + static_cast<size_t>(n) * ng) * v_words_);
    s.v_scale.resize(p0 + static_cast<size_t>(n) * ng);
    s.v_zero.resize(s.v_scale.size());
    for (int t = 0; t < n; ++t) {
      for (int j = 0; j < ng; ++j) {
        const size_t idx = p0 + static_cast<size_t>(t) * ng + j;
        minmax_quantize_pack(v + static_cast<int64_t>(t) * D + h * d + j * G, 1, G, opt_.value_bits,
                             s.v_codes.data() + idx * v_words_, &s.v_scale[idx], &s.v_zero[idx]);
      }
    }
  }
}

void KiviCache::decode_keys(int layer, int64_t first, int n, float* out) const {
  const int D = geo_.kv_dim(), d = geo_.head_dim, G = opt_.group, b = opt_.key_bits;
  const uint32_t mask = (1u << b) - 1u;
  const int per = 32 / b;
  std::vector<float> sc(static_cast<size_t>(d)), zp(static_cast<size_t>(d));
  for (int h = 0; h < geo_.n_head_kv; ++h) {
    const HeadStore& s = store_[layer][h];
    for (int64_t g = first / G; g * G < first + n; ++g) {
      const int j0 = static_cast<int>(std::max<int64_t>(first, g * G) - g * G);
      const int j1 = static_cast<int>(std::min<int64_t>(first + n, (g + 1) * G) - g * G);
      const size_t base = static_cast<size_t>(g) * d;
      for (int c = 0; c < d; ++c) {
        sc[c] = fp16_to_float(s.k_scale[base + c]);
        zp[c] = fp16_to_float(s.k_zero[base + c]);
      }
      const uint32_t* w = s.k_codes.data() + base * k_words_;
      for (int j = j0; j < j1; ++j) {  // token-major: contiguous writes
        const int wi = j / per, sh = b * (j % per);
        float* dst = out + (g * G + j - first) * D + h * d;
        for (int c = 0; c < d; ++c) dst[c] = static_cast<float>((w[c * k_words_ + wi] >> sh) & mask) * sc[c] + zp[c];
      }
    }
  }
}

void KiviCache::decode_values(int layer, int64_t first, int n, float* out) const {
  const int D = geo_.kv_dim(), d = geo_.head_dim, G = opt_.group, ng = d / G;
  for (int h = 0; h < geo_.n_head_kv; ++h) {
    const HeadStore& s = store_[layer][h];
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < ng; ++j) {
        const size_t idx = static_cast<size_t>(first + i) * ng + j;
        minmax_dequantize(s.v_codes.data() + idx * v_words_, G, opt_.value_bits, s.v_scale[idx], s.v_zero[idx],
                          out + static_cast<int64_t>(i) * D + h * d + j * G, 1);
      }
    }
  }
}

void KiviCache::native_scores(int layer, int kv_head, const float* q, int rows, float scale, int64_t t0, int64_t t1,
                              float* scores, int64_t ld) const {
  const HeadStore& s = store_[layer][kv_head];
  KiviKeyView k;
  k.bits = opt_.key_bits;
  k.group = opt_.group;
  k.words = k_words_;
  k.d = geo_.head_dim;
  k.codes = s.k_codes.data();
  k.scale = s.k_scale.data();
  k.zero = s.k_zero.data();
  k.chan_stride = geo_.head_dim;
  kivi_scores(k, q, rows, scale, t0, t1, scores, ld);
}

void KiviCache::native_values(int layer, int kv_head, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1,
                              float* out) const {
  const HeadStore& s = store_[layer][kv_head];
  KiviValueView v;
  v.bits = opt_.value_bits;
  v.group = opt_.group;
  v.words = v_words_;
  v.d = geo_.head_dim;
  v.token_groups = geo_.head_dim / opt_.group;
  v.token_words = v.token_groups * v_words_;
  v.codes = s.v_codes.data();
  v.scale = s.v_scale.data();
  v.zero = s.v_zero.data();
  kivi_values(v, p, ld, rows, t0, t1, out);
}

size_t KiviCache::compressed_bytes(int layer) const {
  size_t b = 0;
  for (const HeadStore& s : store_[layer]) {
    b += (s.k_codes.size() + s.v_codes.size()) * sizeof(uint32_t) +
         (s.k_scale.size() + s.k_zero.size() + s.v_scale.size() + s.v_zero.size()) * sizeof(uint16_t);
  }
  return b;
}

size_t KiviCache::compressed_bytes_for(int64_t n_keys, int64_t n_values) const {
  const int64_t D = geo_.kv_dim(), G = opt_.group;
  const int64_t key_groups = (n_keys + G - 1) / G;  // always whole groups (window % group == 0)
  const int64_t k = key_groups * D * (k_words_ * 4 + 4);
  const int64_t v = n_values * (D / G) * (v_words_ * 4 + 4);
  return static_cast<size_t>(k + v);
}

void KiviCache::clear_compressed() {
  for (auto& s : store_) s.assign(geo_.n_head_kv, HeadStore{});
}

}  // namespace cvq
