#include "kv/windowed_cache.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_bf16.h"
#include "kernels/cpu/ggml_arith.h"
#include "kernels/cpu/kv_attention.h"
#include "kv/kv_spec.h"

namespace cvq {

KvExecMode parse_kv_exec_mode(const KvSpec& spec) {
  const std::string m = spec.get("mode", "native");
  if (m == "native") return KvExecMode::Native;
  if (m == "simulated") return KvExecMode::Simulated;
  throw Error("KV method spec '" + spec.text() + "': mode=" + m + " is not one of native, simulated");
}

const char* kv_exec_mode_name(KvExecMode m) { return m == KvExecMode::Native ? "native" : "simulated"; }

int64_t window_rule_compress_count(WindowRule rule, int window, int64_t w) {
  switch (rule) {
    case WindowRule::Blocks: return window > 0 ? (w / window) * window : w;
    case WindowRule::KeepLast: return std::max<int64_t>(0, w - window);
    case WindowRule::Never: return 0;
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
int64_t WindowedCache::n_window_keys(int layer) const { return n_tokens(layer) - n_sink(layer) - layers_[layer].n_comp_k; }
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
    for (int h = 0; h < geo_.n_head_kv; ++h)
      for (int64_t t = 0; t < c; ++t)
        for (int i = 0; i < d; ++i) buf[t * D + h * d + i] = half_to_float(win.heads[h][t * d + i]);
    const int32_t* pos = L.positions.data() + S + n_comp;
    if (keys && policy_.keys_pre_rope) {  // the window holds them post-RoPE: rotate back
      for (int64_t t = 0; t < c; ++t) geo_.rope.apply(buf.data() + t * D, geo_.n_head_kv, -pos[t]);
    }
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
  if (layer < 0 || layer >= geo_.n_layers) {
    throw Error("KV cache '" + spec() + "': layer " + std::to_string(layer) + " out of range");
  }
  if (n <= 0) return;
  Layer& L = layers_[layer];
  for (int t = 0; t < n; ++t) {
    const int32_t prev = t > 0 ? positions[t - 1] : (L.positions.empty() ? std::numeric_limits<int32_t>::min() : L.positions.back());
    if (positions[t] < prev) {
      throw Error("KV cache '" + spec() + "': positions must be appended in ascending order (got " +
                  std::to_string(positions[t]) + " after " + std::to_string(prev) + ")");
    }
  }
  compress_pending(layer);
  const int D = geo_.kv_dim();
  std::vector<float> k(k_pre_rope, k_pre_rope + static_cast<int64_t>(n) * D);
  for (int t = 0; t < n; ++t) geo_.rope.apply(k.data() + static_cast<int64_t>(t) * D, geo_.n_head_kv, positions[t]);
  const int64_t n_old = static_cast<int64_t>(L.positions.size());
  for (int t = 0; t < n; ++t) {
    const bool sink = n_old + t < policy_.sink;
    HalfRows& dk = sink ? L.sink_k : L.win_k;
    HalfRows& dv = sink ? L.sink_v : L.win_v;
    const float* kt = k.data() + static_cast<int64_t>(t) * D;
    const float* vt = v + static_cast<int64_t>(t) * D;
    const int d = geo_.head_dim;
    dk.heads.resize(geo_.n_head_kv);
    dv.heads.resize(geo_.n_head_kv);
    for (int h = 0; h < geo_.n_head_kv; ++h)
      for (int i = 0; i < d; ++i) {
        dk.heads[h].push_back(float_to_half(kt[h * d + i]));
        dv.heads[h].push_back(float_to_half(vt[h * d + i]));
      }
    ++dk.n;
    ++dv.n;
    if (mode_ == KvExecMode::Simulated) {
      const size_t at = L.sim_k.size();
      L.sim_k.resize(at + D);
      L.sim_v.resize(at + D);
      for (int i = 0; i < D; ++i) {
        L.sim_k[at + i] = half_to_float(float_to_half(kt[i]));
        L.sim_v[at + i] = half_to_float(float_to_half(vt[i]));
      }
    }
  }
  L.positions.insert(L.positions.end(), positions, positions + n);
}

void WindowedCache::attend(int layer, const float* q, const int32_t* positions, int n, float* out) {
  if (layer < 0 || layer >= geo_.n_layers) {
    throw Error("KV cache '" + spec() + "': layer " + std::to_string(layer) + " out of range");
  }
  if (n <= 0) return;
  std::vector<int32_t> visible(n);
  visible_counts(layers_[layer].positions, positions, n, visible.data());
  if (policy_.llamacpp) {
    attend_llamacpp(layer, q, visible.data(), n, out);
  } else if (mode_ == KvExecMode::Simulated) {
    attend_simulated(layer, q, visible.data(), n, out);
  } else {
    attend_native(layer, q, visible.data(), n, out);
  }
}

void WindowedCache::attend_llamacpp(int layer, const float* q, const int32_t* visible, int n, float* out) {
  const Layer& L = layers_[layer];
  const int d = geo_.head_dim, Hkv = geo_.n_head_kv, group = geo_.n_head / geo_.n_head_kv, q_dim = geo_.q_dim();
  const int64_t N = static_cast<int64_t>(L.positions.size());
  if (L.n_comp_k != 0 || L.n_comp_v != 0 || n_sink(layer) != 0) {
    throw Error("KV cache '" + spec() + "': llama.cpp attention needs every token in full precision");
  }
  // The heads' keys and values widened to float once (f16 to f32 is exact).
  std::vector<float> kf(static_cast<size_t>(Hkv) * N * d), vf(kf.size());
  for (int h = 0; h < Hkv; ++h) {
    for (int64_t t = 0; t < N; ++t) {
      const uint16_t* ks = L.win_k.at(h, t, d);
      const uint16_t* vs = L.win_v.at(h, t, d);
      for (int i = 0; i < d; ++i) {
        kf[(h * N + t) * d + i] = half_to_float(ks[i]);
        vf[(h * N + t) * d + i] = half_to_float(vs[i]);
      }
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t rows = static_cast<int64_t>(n) * geo_.n_head;
  ThreadPool::global().parallel_for(rows, [&](int64_t r0, int64_t r1, int) {
    std::vector<float> scratch(static_cast<size_t>(2 * ((N + 15) / 16 * 16) + 17 * d));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r / geo_.n_head;
      const int head = static_cast<int>(r % geo_.n_head), kvh = head / group;
      const int64_t off = i * q_dim + static_cast<int64_t>(head) * d;
      if (visible[i] == 0) {
        std::fill(out + off, out + off + d, 0.0f);
        continue;
      }
      ggml_attend_row(q + off, kf.data() + kvh * N * d, vf.data() + kvh * N * d, d, visible[i], d, scale, out + off,
                      scratch.data());
    }
  });
}

void WindowedCache::attend_simulated(int layer, const float* q, const int32_t* visible, int n, float* out) {
  const Layer& L = layers_[layer];
  int ctx = 0;
  for (int i = 0; i < n; ++i) ctx = std::max(ctx, visible[i]);
  AttentionArgs a;
  a.q = q;
  a.n_q = n;
  a.q_stride = geo_.q_dim();
  a.n_head = geo_.n_head;
  a.n_head_kv = geo_.n_head_kv;
  a.head_dim = geo_.head_dim;
  a.k = L.sim_k.data();
  a.v = L.sim_v.data();
  a.n_ctx = ctx;
  a.kv_stride = geo_.kv_dim();
  a.n_visible = visible;
  a.out = out;
  attention_f32(a);
}

namespace {
// Query rows (queries x GQA group) from which attention over full-precision tokens uses SGEMM.
constexpr int kGemmQueryRows = 32;
}  // namespace

// Sink then window tokens of every KV head as floats: fk/fv [Hkv][n_full][d] (fk may be null).
void WindowedCache::pool_widen_half(const Layer& L, bool bf16, int64_t S, int64_t n_full_k, int64_t n_full_v, int d,
                                    int Hkv, float* fk, float* fv) {
  auto widen = [&](const HalfRows& sink, const HalfRows& win, int64_t n_full, float* dst) {
    ThreadPool::global().parallel_for(
        static_cast<int64_t>(Hkv) * n_full,
        [&](int64_t b, int64_t e, int) {
          for (int64_t i = b; i < e; ++i) {
            const int h = static_cast<int>(i / n_full);
            const int64_t t = i % n_full;
            const uint16_t* src = t < S ? sink.at(h, t, d) : win.at(h, t - S, d);
            float* o = dst + i * d;
            if (bf16) {
              for (int c = 0; c < d; ++c) o[c] = bf16_to_float(src[c]);
            } else {
              for (int c = 0; c < d; ++c) o[c] = fp16_to_float(src[c]);
            }
          }
        },
        256);
  };
  if (fk) widen(L.sink_k, L.win_k, n_full_k, fk);
  widen(L.sink_v, L.win_v, n_full_v, fv);
}

void WindowedCache::attend_native(int layer, const float* q, const int32_t* visible, int n, float* out) {
  const Layer& L = layers_[layer];
  const int d = geo_.head_dim, Hkv = geo_.n_head_kv, group = geo_.n_head / geo_.n_head_kv;
  const int q_dim = geo_.q_dim();
  const int64_t N = static_cast<int64_t>(L.positions.size());
  const int64_t S = n_sink(layer), ck = L.n_comp_k, cv = L.n_comp_v;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const HalfKind kind = policy_.bf16 ? HalfKind::BF16 : HalfKind::F16;

  // Many queries (prefill): the full-precision tokens widened to float once per call (exact), so
  // scores and values over them go through SGEMM; decode keeps the fused half-precision kernels.
  const bool gemm = n * group >= kGemmQueryRows;
  const int64_t n_full_k = S + (N - S - ck), n_full_v = S + (N - S - cv);
  std::vector<float> fk, fv;  // [Hkv][n_full][d]
  if (gemm) {
    fv.resize(static_cast<size_t>(Hkv) * n_full_v * d);
    fk.resize(static_cast<size_t>(Hkv) * n_full_k * d);
    pool_widen_half(L, policy_.bf16, S, n_full_k, n_full_v, d, Hkv, fk.data(), fv.data());
  }
  // matmul=bf16: those products in bf16 (kernels/cpu/attention_bf16.h), packed once per call.
  const bool bf16_gemm = gemm && bf16_prefill_ && d % 32 == 0;
  PackedKvBf16 packed;
  if (bf16_gemm) packed.pack(fk.data(), n_full_k * d, d, n_full_k, fv.data(), n_full_v * d, d, n_full_v, Hkv, d);

  ThreadPool& pool = ThreadPool::global();
  const int n_threads = pool.size();
  constexpr int kQueryChunk = 32;
  for (int q0 = 0; q0 < n; q0 += kQueryChunk) {
    const int nq = std::min(kQueryChunk, n - q0);
    const int rows = nq * group;
    int64_t ctx = 0;
    for (int i = 0; i < nq; ++i) ctx = std::max<int64_t>(ctx, visible[q0 + i]);
    if (ctx == 0) {
      std::fill(out + static_cast<int64_t>(q0) * q_dim, out + static_cast<int64_t>(q0 + nq) * q_dim, 0.0f);
      continue;
    }
    // Token splits of about kSplitTokens (scores of one task within ~4 MB), from the context and the
    // rows alone: the merge below sums the splits in order, so the numbers are the same whatever
    // the thread count. Small work (short context decode) runs on this thread: waking the pool
    // costs more than it saves.
    constexpr int64_t kSplitTokens = 512;
    const bool serial = n_threads == 1 || static_cast<int64_t>(Hkv) * ctx * rows * d < (int64_t{1} << 21);
    int64_t n_splits = (ctx + kSplitTokens - 1) / kSplitTokens;
    n_splits = std::max<int64_t>(n_splits, (static_cast<int64_t>(rows) * ctx + (1 << 20) - 1) >> 20);
    int64_t split_len = (ctx + n_splits - 1) / n_splits;
    split_len = (split_len + 63) / 64 * 64;
    n_splits = (ctx + split_len - 1) / split_len;
    const int64_t n_tasks = Hkv * n_splits;
    std::vector<float> part_m(static_cast<size_t>(n_tasks) * rows), part_l(part_m.size());
    std::vector<float> part_o(static_cast<size_t>(n_tasks) * rows * d);

    auto run_tasks = [&](int64_t tb, int64_t te, int) {
      thread_local std::vector<float> qg, sc;
      for (int64_t task = tb; task < te; ++task) {
        const int kvh = static_cast<int>(task / n_splits);
        const int64_t a = (task % n_splits) * split_len, b = std::min(ctx, a + split_len), len = b - a;
        qg.resize(static_cast<size_t>(rows) * d);
        for (int i = 0; i < nq; ++i) {
          const float* src = q + static_cast<int64_t>(q0 + i) * q_dim + static_cast<int64_t>(kvh) * group * d;
          std::copy(src, src + group * d, qg.data() + static_cast<int64_t>(i) * group * d);
        }
        sc.resize(static_cast<size_t>(rows) * len);
        float* m_out = part_m.data() + task * rows;
        float* l_out = part_l.data() + task * rows;
        float* o_out = part_o.data() + task * rows * d;
        std::fill(o_out, o_out + static_cast<int64_t>(rows) * d, 0.0f);
        // Scores: sink | compressed | window, each clipped to [a, b).
        auto seg = [&](int64_t lo, int64_t hi, auto&& fn) {
          const int64_t s0 = std::max(lo, a), s1 = std::min(hi, b);
          if (s0 < s1) fn(s0, s1);
        };
        auto full_scores = [&](int64_t s0, int64_t s1, int64_t full_index) {
          // full_index: index of token s0 among the full-precision keys (sink then window)
          if (bf16_gemm && PackedKvBf16::scores_aligned(full_index)) {
            packed.scores(kvh, qg.data(), rows, scale, full_index, s1 - s0, sc.data() + (s0 - a), len);
          } else if (gemm) {
            kv_scores_gemm(qg.data(), rows, d, fk.data() + (kvh * n_full_k + full_index) * d, d, s1 - s0, scale,
                           sc.data() + (s0 - a), len);
          } else {
            const uint16_t* base = full_index < S ? L.sink_k.at(kvh, full_index, d) : L.win_k.at(kvh, full_index - S, d);
            kv_scores_half(kind, qg.data(), rows, d, base, d, s1 - s0, scale, sc.data() + (s0 - a), len);
          }
        };
        seg(0, S, [&](int64_t s0, int64_t s1) { full_scores(s0, s1, s0); });
        seg(S, S + ck, [&](int64_t s0, int64_t s1) {
          native_scores(layer, kvh, qg.data(), rows, scale, s0 - S, s1 - S, sc.data() + (s0 - a), len);
        });
        seg(S + ck, N, [&](int64_t s0, int64_t s1) { full_scores(s0, s1, s0 - ck); });
        // Softmax over this range, masked per query.
        for (int r = 0; r < rows; ++r) {
          float* row = sc.data() + static_cast<int64_t>(r) * len;
          const int64_t valid = std::clamp<int64_t>(visible[q0 + r / group] - a, 0, len);
          if (valid == 0) {
            m_out[r] = -std::numeric_limits<float>::infinity();
            l_out[r] = 0.0f;
            std::fill(row, row + len, 0.0f);
            continue;
          }
          const float mx = kv_max(row, valid);
          m_out[r] = mx;
          l_out[r] = kv_exp_sum(row, valid, mx);
          std::fill(row + valid, row + len, 0.0f);
        }
        // Values: sink | compressed | window (value split cv).
        auto full_values = [&](int64_t s0, int64_t s1, int64_t full_index) {
          // full_index: index of token s0 among the full-precision values (sink then window)
          if (bf16_gemm && PackedKvBf16::values_aligned(full_index)) {
            packed.values(kvh, sc.data() + (s0 - a), len, rows, full_index, s1 - s0, o_out);
          } else if (gemm) {
            kv_values_gemm(sc.data() + (s0 - a), len, rows, d, fv.data() + (kvh * n_full_v + full_index) * d, d, s1 - s0, o_out);
          } else {
            const uint16_t* base = full_index < S ? L.sink_v.at(kvh, full_index, d) : L.win_v.at(kvh, full_index - S, d);
            kv_values_half(kind, sc.data() + (s0 - a), len, rows, d, base, d, s1 - s0, o_out);
          }
        };
        seg(0, S, [&](int64_t s0, int64_t s1) { full_values(s0, s1, s0); });
        seg(S, S + cv, [&](int64_t s0, int64_t s1) {
          native_values(layer, kvh, sc.data() + (s0 - a), len, rows, s0 - S, s1 - S, o_out);
        });
        seg(S + cv, N, [&](int64_t s0, int64_t s1) { full_values(s0, s1, s0 - cv); });
      }
    };
    if (serial) {
      run_tasks(0, n_tasks, 0);
    } else {
      pool.parallel_for(n_tasks, run_tasks);
    }

    // Merge the ranges' partial softmaxes.
    for (int kvh = 0; kvh < Hkv; ++kvh) {
      for (int r = 0; r < rows; ++r) {
        float M = -std::numeric_limits<float>::infinity();
        for (int64_t s = 0; s < n_splits; ++s) M = std::max(M, part_m[(kvh * n_splits + s) * rows + r]);
        float* dst = out + static_cast<int64_t>(q0 + r / group) * q_dim + (static_cast<int64_t>(kvh) * group + r % group) * d;
        std::fill(dst, dst + d, 0.0f);
        if (M == -std::numeric_limits<float>::infinity()) continue;
        float denom = 0.0f;
        for (int64_t s = 0; s < n_splits; ++s) {
          const int64_t t = kvh * n_splits + s;
          const float l = part_l[t * rows + r];
          if (l == 0.0f) continue;
          const float w = n_splits == 1 ? 1.0f : std::exp(part_m[t * rows + r] - M);
          denom += w * l;
          const float* o = part_o.data() + (t * rows + r) * d;
          for (int c = 0; c < d; ++c) dst[c] += w * o[c];
        }
        const float inv = denom > 0.0f ? 1.0f / denom : 0.0f;
        for (int c = 0; c < d; ++c) dst[c] *= inv;
      }
    }
  }
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
