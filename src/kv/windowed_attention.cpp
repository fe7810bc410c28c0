#include "kv/windowed_cache.h"

// WindowedCache's attention paths: over [sink | compressed | window], natively on the method's codes
// (hooks native_scores / native_values), on decoded copies (mode=simulated), or with llama.cpp's
// arithmetic. The bookkeeping (append, compression, bytes) is in windowed_cache.cpp.
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

namespace cvq {

void WindowedCache::attend(int layer, const float* q, const int32_t* positions, int n, float* out) {
  check_layer(layer);
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

namespace {

// Token splits of about 512 (scores of one task within ~4 MB), from the context and the rows alone:
// the merge sums the splits in order, so the numbers are the same whatever the thread count.
void plan_token_splits(int64_t ctx, int rows, int64_t* n_splits, int64_t* split_len) {
  constexpr int64_t kSplitTokens = 512;
  int64_t n = (ctx + kSplitTokens - 1) / kSplitTokens;
  n = std::max<int64_t>(n, (static_cast<int64_t>(rows) * ctx + (1 << 20) - 1) >> 20);
  int64_t len = (ctx + n - 1) / n;
  len = (len + 63) / 64 * 64;
  *split_len = len;
  *n_splits = (ctx + len - 1) / len;
}

// Merges the splits' partial softmaxes (max m, sum l, unnormalized output o per [kv head][split][row])
// into out, the rows' query-major [queries x q_dim] outputs.
void merge_partial_softmax(const float* part_m, const float* part_l, const float* part_o, int Hkv, int64_t n_splits,
                           int rows, int d, int group, int q_dim, float* out) {
  for (int kvh = 0; kvh < Hkv; ++kvh) {
    for (int r = 0; r < rows; ++r) {
      float M = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < n_splits; ++s) M = std::max(M, part_m[(kvh * n_splits + s) * rows + r]);
      float* dst = out + static_cast<int64_t>(r / group) * q_dim + (static_cast<int64_t>(kvh) * group + r % group) * d;
      std::fill(dst, dst + d, 0.0f);
      if (M == -std::numeric_limits<float>::infinity()) continue;
      float denom = 0.0f;
      for (int64_t s = 0; s < n_splits; ++s) {
        const int64_t t = kvh * n_splits + s;
        const float l = part_l[t * rows + r];
        if (l == 0.0f) continue;
        const float w = n_splits == 1 ? 1.0f : std::exp(part_m[t * rows + r] - M);
        denom += w * l;
        const float* o = part_o + (t * rows + r) * d;
        for (int c = 0; c < d; ++c) dst[c] += w * o[c];
      }
      const float inv = denom > 0.0f ? 1.0f / denom : 0.0f;
      for (int c = 0; c < d; ++c) dst[c] *= inv;
    }
  }
}

}  // namespace

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
    // Small work (short context decode) runs on this thread: waking the pool costs more than it saves.
    const bool serial = n_threads == 1 || static_cast<int64_t>(Hkv) * ctx * rows * d < (int64_t{1} << 21);
    int64_t n_splits = 0, split_len = 0;
    plan_token_splits(ctx, rows, &n_splits, &split_len);
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
            const uint16_t* base =
                full_index < S ? L.sink_k.at(kvh, full_index, d) : L.win_k.at(kvh, full_index - S, d);
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
            kv_values_gemm(sc.data() + (s0 - a), len, rows, d, fv.data() + (kvh * n_full_v + full_index) * d, d,
                           s1 - s0, o_out);
          } else {
            const uint16_t* base =
                full_index < S ? L.sink_v.at(kvh, full_index, d) : L.win_v.at(kvh, full_index - S, d);
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

    merge_partial_softmax(part_m.data(), part_l.data(), part_o.data(), Hkv, n_splits, rows, d, group, q_dim,
                          out + static_cast<int64_t>(q0) * q_dim);
  }
}

}  // namespace cvq
