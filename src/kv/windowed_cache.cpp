#include "kv/windowed_cache.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kv/kv_spec.h"

namespace cvq {
namespace {

// fn(t) for every token t < count, over the pool when there are at least 2 × 64 of them (a prompt); a
// decode step's token stays on the caller. Each t writes only its own rows.
void for_each_token(int64_t count, const std::function<void(int64_t)>& fn) {
  ThreadPool::global().parallel_for(
      count,
      [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) fn(t);
      },
      64);
}

}  // namespace

KvExecMode parse_kv_exec_mode(const KvSpec& spec) {
  const std::string m = spec.get("mode", "native");
  if (m == "native") return KvExecMode::Native;
  if (m == "simulated") return KvExecMode::Simulated;
  throw Error("KV method spec '" + spec.text() + "': mode=" + m + " is not one of native, simulated");
}

const char* kv_exec_mode_name(KvExecMode m) { return m == KvExecMode::Native ? "native" : "simulated"; }

int64_t window_rule_compress_count(WindowRule rule, int window, int64_t w) {
  switch (rule) {
    case WindowRule::Blocks:
      return window > 0 ? (w / window) * window : w;
    case WindowRule::KeepLast:
      return std::max<int64_t>(0, w - window);
    case WindowRule::Never:
      return 0;
  }
  return 0;
}

WindowedCache::WindowedCache(KvGeometry g, WindowPolicy policy, KvExecMode mode)
    : KvCache(std::move(g)), policy_(policy), mode_(mode), layers_(geo_.n_layers) {
  if (geo_.n_layers <= 0 || geo_.n_head <= 0 || geo_.n_head_kv <= 0 || geo_.head_dim <= 0 ||
      geo_.n_head % geo_.n_head_kv != 0) {
    throw Error("KV cache: invalid geometry (" + std::to_string(geo_.n_layers) + " layers, " +
                std::to_string(geo_.n_head) + " heads, " + std::to_string(geo_.n_head_kv) + " KV heads, head dim " +
                std::to_string(geo_.head_dim) + ")");
  }
  if (policy_.window < 0 || policy_.sink < 0) throw Error("KV cache: window and sink must be >= 0");
}

float WindowedCache::half_to_float(uint16_t h) const { return policy_.bf16 ? bf16_to_float(h) : fp16_to_float(h); }
uint16_t WindowedCache::float_to_half(float f) const { return policy_.bf16 ? float_to_bf16(f) : float_to_fp16(f); }

std::string WindowedCache::prefill_signature() const {
  if (policy_.llamacpp) return "windowed:llamacpp";
  return std::string("windowed:") + (policy_.bf16 ? "bf16" : "fp16") + ":" + kv_exec_mode_name(mode_) +
         ":sink=" + std::to_string(policy_.sink);
}

int64_t WindowedCache::n_sink(int layer) const {
  return std::min<int64_t>(policy_.sink, static_cast<int64_t>(layers_[layer].positions.size()));
}
int64_t WindowedCache::n_window_keys(int layer) const {
  return n_tokens(layer) - n_sink(layer) - layers_[layer].n_comp_k;
}
int64_t WindowedCache::n_window_values(int layer) const {
  return n_tokens(layer) - n_sink(layer) - layers_[layer].n_comp_v;
}
const int32_t* WindowedCache::compressed_positions(int layer) const {
  return layers_[layer].positions.data() + n_sink(layer);
}

// ---- default hooks: a method that never compresses needs none of them ----
void WindowedCache::compress_keys(int, int64_t, int, const float*, const int32_t*) {
  throw Error("KV method '" + spec() + "' has no key compression");
}
void WindowedCache::compress_values(int, int64_t, int, const float*, const int32_t*) {
  throw Error("KV method '" + spec() + "' has no value compression");
}
void WindowedCache::decode_keys(int, int64_t, int, float*) const {
  throw Error("KV method '" + spec() + "' cannot decode keys");
}
void WindowedCache::decode_values(int, int64_t, int, float*) const {
  throw Error("KV method '" + spec() + "' cannot decode values");
}
void WindowedCache::native_scores(int, int, const float*, int, float, int64_t, int64_t, float*, int64_t) const {
  throw Error("KV method '" + spec() + "' has no native score kernel");
}
void WindowedCache::native_values(int, int, const float*, int64_t, int, int64_t, int64_t, float*) const {
  throw Error("KV method '" + spec() + "' has no native value kernel");
}

void WindowedCache::compress_pending(int layer) {
  Layer& L = layers_[layer];
  const int D = geo_.kv_dim();
  const int64_t S = n_sink(layer);
  std::vector<float> buf;
  auto take = [&](bool keys) {
    int64_t& n_comp = keys ? L.n_comp_k : L.n_comp_v;
    HalfRows& win = keys ? L.win_k : L.win_v;
    const int64_t c = window_rule_compress_count(keys ? policy_.key_rule : policy_.value_rule, policy_.window, win.n);
    if (c <= 0) return;
    const int d = geo_.head_dim;
    buf.resize(static_cast<size_t>(c) * D);
    const int32_t* pos = L.positions.data() + S + n_comp;
    const bool rotate_back = keys && policy_.keys_pre_rope;  // the window holds them post-RoPE
    for_each_token(c, [&](int64_t t) {
      for (int h = 0; h < geo_.n_head_kv; ++h)
        for (int i = 0; i < d; ++i) buf[t * D + h * d + i] = half_to_float(win.heads[h][t * d + i]);
      if (rotate_back) geo_.rope.apply(buf.data() + t * D, geo_.n_head_kv, -pos[t]);
    });
    if (keys) {
      compress_keys(layer, n_comp, static_cast<int>(c), buf.data(), pos);
    } else {
      compress_values(layer, n_comp, static_cast<int>(c), buf.data(), pos);
    }
    for (auto& hv : win.heads) hv.erase(hv.begin(), hv.begin() + c * d);
    win.n -= c;
    if (mode_ == KvExecMode::Simulated) {
      float* dst = (keys ? L.sim_k : L.sim_v).data() + (S + n_comp) * D;
      if (keys) {
        decode_keys(layer, n_comp, static_cast<int>(c), dst);
        if (policy_.keys_pre_rope) {
          for (int64_t t = 0; t < c; ++t) geo_.rope.apply(dst + t * D, geo_.n_head_kv, pos[t]);
        }
      } else {
        decode_values(layer, n_comp, static_cast<int>(c), dst);
      }
    }
    n_comp += c;
  };
  take(true);
  take(false);
}

void WindowedCache::settle() {
  for (int l = 0; l < geo_.n_layers; ++l) compress_pending(l);
}

void WindowedCache::check_layer(int layer) const {
  if (layer < 0 || layer >= geo_.n_layers) {
    throw Error("KV cache '" + spec() + "': layer " + std::to_string(layer) + " out of range");
  }
}

void WindowedCache::settle_layer(int layer) {
  check_layer(layer);
  compress_pending(layer);
}

void WindowedCache::materialize(int layer, float* k, float* v) const {
  const Layer& L = layers_[layer];
  const int D = geo_.kv_dim();
  const int64_t S = n_sink(layer), N = n_tokens(layer);
  const int d = geo_.head_dim;
  auto unpack = [&](const HalfRows& rows, int64_t t0, int64_t n, float* dst) {  // rows' tokens -> dst[t0..]
    for (int h = 0; h < geo_.n_head_kv; ++h)
      for (int64_t t = 0; t < n; ++t)
        for (int i = 0; i < d; ++i) dst[(t0 + t) * D + h * d + i] = half_to_float(rows.heads[h][t * d + i]);
  };
  unpack(L.sink_k, 0, S, k);
  unpack(L.sink_v, 0, S, v);
  constexpr int64_t kChunk = 1024;  // decode in parallel, in chunks of whole KIVI groups
  const int64_t nk = (L.n_comp_k + kChunk - 1) / kChunk, nv = (L.n_comp_v + kChunk - 1) / kChunk;
  ThreadPool::global().parallel_for(nk + nv, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const bool keys = i < nk;
      const int64_t first = (keys ? i : i - nk) * kChunk;
      const int n = static_cast<int>(std::min(kChunk, (keys ? L.n_comp_k : L.n_comp_v) - first));
      if (keys) {
        decode_keys(layer, first, n, k + (S + first) * D);
      } else {
        decode_values(layer, first, n, v + (S + first) * D);
      }
    }
  });
  unpack(L.win_k, S + L.n_comp_k, L.win_k.n, k);
  unpack(L.win_v, S + L.n_comp_v, L.win_v.n, v);
  (void)N;
  if (policy_.keys_pre_rope) {  // decoded keys come back pre-RoPE
    for (int64_t t = S; t < S + L.n_comp_k; ++t) geo_.rope.apply(k + t * D, geo_.n_head_kv, L.positions[t]);
  }
}

void WindowedCache::append(int layer, const float* k_pre_rope, const float* v, const int32_t* positions, int n) {
  check_layer(layer);
  if (n <= 0) return;
  Layer& L = layers_[layer];
  for (int t = 0; t < n; ++t) {
    const int32_t prev =
        t > 0 ? positions[t - 1] : (L.positions.empty() ? std::numeric_limits<int32_t>::min() : L.positions.back());
    if (positions[t] < prev) {
      throw Error("KV cache '" + spec() + "': positions must be appended in ascending order (got " +
                  std::to_string(positions[t]) + " after " + std::to_string(prev) + ")");
    }
  }
  compress_pending(layer);
  // Per-token work (RoPE's sin/cos, the fp16 conversion; for every member of a shared prefill) runs
  // over the pool for a prompt.
  const int D = geo_.kv_dim(), d = geo_.head_dim;
  std::vector<float> k(k_pre_rope, k_pre_rope + static_cast<int64_t>(n) * D);
  for_each_token(n, [&](int64_t t) { geo_.rope.apply(k.data() + t * D, geo_.n_head_kv, positions[t]); });
  const int64_t n_old = static_cast<int64_t>(L.positions.size());
  const int64_t n_to_sink = std::clamp<int64_t>(policy_.sink - n_old, 0, n);
  // Tokens [first, first + count) of this call go to the end of dk / dv.
  auto store = [&](HalfRows& dk, HalfRows& dv, int64_t first, int64_t count) {
    if (count <= 0) return;
    dk.heads.resize(geo_.n_head_kv);
    dv.heads.resize(geo_.n_head_kv);
    for (int h = 0; h < geo_.n_head_kv; ++h) {
      dk.heads[h].resize((dk.n + count) * d);
      dv.heads[h].resize((dv.n + count) * d);
    }
    for_each_token(count, [&](int64_t t) {
      const float* kt = k.data() + (first + t) * D;
      const float* vt = v + (first + t) * D;
      for (int h = 0; h < geo_.n_head_kv; ++h)
        for (int i = 0; i < d; ++i) {
          dk.heads[h][(dk.n + t) * d + i] = float_to_half(kt[h * d + i]);
          dv.heads[h][(dv.n + t) * d + i] = float_to_half(vt[h * d + i]);
        }
    });
    dk.n += count;
    dv.n += count;
  };
  store(L.sink_k, L.sink_v, 0, n_to_sink);
  store(L.win_k, L.win_v, n_to_sink, n - n_to_sink);
  if (mode_ == KvExecMode::Simulated) {
    const size_t at = L.sim_k.size();
    L.sim_k.resize(at + static_cast<size_t>(n) * D);
    L.sim_v.resize(at + static_cast<size_t>(n) * D);
    for_each_token(n, [&](int64_t t) {
      for (int i = 0; i < D; ++i) {
        L.sim_k[at + t * D + i] = half_to_float(float_to_half(k[t * D + i]));
        L.sim_v[at + t * D + i] = half_to_float(float_to_half(v[t * D + i]));
      }
    });
  }
  L.positions.insert(L.positions.end(), positions, positions + n);
}

size_t WindowedCache::HalfRows::bytes() const {
  size_t b = 0;
  for (const auto& h : heads) b += h.size() * sizeof(uint16_t);
  return b;
}

size_t WindowedCache::bytes() const {
  size_t b = 0;
  for (int l = 0; l < geo_.n_layers; ++l) {
    const Layer& L = layers_[l];
    b += L.sink_k.bytes() + L.sink_v.bytes() + L.win_k.bytes() + L.win_v.bytes();
    b += compressed_bytes(l);
  }
  return b;
}

size_t WindowedCache::projected_window_bytes(int64_t n) const {
  const int64_t S = std::min<int64_t>(policy_.sink, n), rest = n - S;
  const int64_t ck = window_rule_compress_count(policy_.key_rule, policy_.window, rest);
  const int64_t cv = window_rule_compress_count(policy_.value_rule, policy_.window, rest);
  const int64_t full = 2 * S + (rest - ck) + (rest - cv);
  return static_cast<size_t>(full) * geo_.kv_dim() * sizeof(uint16_t) * geo_.n_layers;
}

size_t WindowedCache::projected_bytes(int64_t n) const {
  const int64_t S = std::min<int64_t>(policy_.sink, n), rest = n - S;
  const int64_t ck = window_rule_compress_count(policy_.key_rule, policy_.window, rest);
  const int64_t cv = window_rule_compress_count(policy_.value_rule, policy_.window, rest);
  return projected_window_bytes(n) + compressed_bytes_for(ck, cv) * geo_.n_layers;
}

void WindowedCache::clear() {
  for (auto& L : layers_) L = Layer{};
  clear_compressed();
}

}  // namespace cvq
