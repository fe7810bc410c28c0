// CommVQ keys: the factorized EM iteration against brute-force N×4096 distances, and attention
// scores on codes (docs/METHOD.md §6.1) against decode-then-dot, single-threaded.
//   micro_bench --benchmark_filter=Commvq
// EM: N = 16384 clustered unit vectors, one stage initialized as in training, one E step (τ = 1e-4)
// plus one M step per iteration. Variants:
//   factorized      — this project (docs/METHOD.md §4): d×128 products, 4096 adds/token, pruned softmax, marginals
//   brute_distances — an N×4096×d GEMM for the distances, everything else as factorized
//   brute_reference — as the reference code: distance GEMM, dense softmax, 4096×N×d weighted sums
// Scores: one KV head and its G query heads over n cached tokens in 128-token blocks; each block's
// cos/sin table is built by RopeBlockTable::fill_from_base from the block's stored base angles
// (included in every variant). Variants:
//   codes       — per query head: commvq_query_table, then commvq_scores_codes on every block
//                 (2R gathers of U rows per token and head)
//   decode_fused — commvq_scores_decode (decode k̂, rotate, dot, in registers)
//   decode_materialize — decode the block's keys to a buffer (KeyCodebook::decode_batch), rotate
//                 them with the table, then one sgemm for the G queries (dequantize-then-attend)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "commvq/key_codebook.h"
#include "commvq/key_em.h"
#include "core/thread_pool.h"
#include "kernels/cpu/commvq_scores.h"
#include "kernels/cpu/rope.h"

namespace {

using namespace cvq;

const bool kBlasSingleThreaded = [] {
  openblas_set_num_threads(1);
  return true;
}();

ThreadPool& one_thread() {
  static ThreadPool pool(1);
  return pool;
}

std::vector<float> clustered_pairs(int64_t n, int d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f), noise(0.0f, 0.2f);
  const int clusters = 512;
  std::vector<float> centres(static_cast<size_t>(clusters) * d);
  for (float& x : centres) x = g(rng);
  std::uniform_int_distribution<int> pick(0, clusters - 1);
  std::vector<float> x(static_cast<size_t>(n) * d);
  for (int64_t i = 0; i < n; ++i) {
    const int k = pick(rng);
    double s = 0.0;
    for (int j = 0; j < d; ++j) {
      x[i * d + j] = centres[k * d + j] + noise(rng);
      s += static_cast<double>(x[i * d + j]) * x[i * d + j];
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(s));
    for (int j = 0; j < d; ++j) x[i * d + j] *= inv;
  }
  return x;
}

void BM_CommvqEmIteration(benchmark::State& state, KeyStageEm::EStep mode) {
  const int d = static_cast<int>(state.range(0));
  const int64_t n = state.range(1);
  const std::vector<float> x = clustered_pairs(n, d, 7);
  KeyStageEm em(x.data(), nullptr, n, d, true, &one_thread());
  em.init_random(1, 4096, 1.0, 30.0, 1e-6);
  for (auto _ : state) {
    benchmark::DoNotOptimize(em.e_step(1e-4, 30.0, mode));
    em.m_step(1e-6);
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK_CAPTURE(BM_CommvqEmIteration, factorized, KeyStageEm::EStep::Factorized)
    ->Args({64, 16384})
    ->Args({128, 16384})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_CommvqEmIteration, brute_distances, KeyStageEm::EStep::BruteDistances)
    ->Args({64, 16384})
    ->Args({128, 16384})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK_CAPTURE(BM_CommvqEmIteration, brute_reference, KeyStageEm::EStep::BruteReference)
    ->Args({64, 16384})
    ->Args({128, 16384})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2);

// Training one stage end to end as train_key_head does (init + K iterations + residual), for the
// per-(layer, head) time at the defaults: stage time × R.
void BM_CommvqEmStage(benchmark::State& state) {
  const int d = static_cast<int>(state.range(0));
  const int64_t n = state.range(1);
  const std::vector<float> x = clustered_pairs(n, d, 9);
  std::vector<float> u(x.size());
  from_pair_split(x.data(), n, d, RopeLayout::HalfSplit, u.data());
  KeyEmOptions opts;
  opts.threads = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(train_key_head(u.data(), d, nullptr, n, d, 1, RopeLayout::HalfSplit, opts));
  }
}
BENCHMARK(BM_CommvqEmStage)->Args({64, 16384})->Args({128, 16384})->Unit(benchmark::kMillisecond)->Iterations(2);

// Encoding one 128-token block of one KV head (what the cache does when its window fills), one thread.
void BM_CommvqEncodeBlock(benchmark::State& state) {
  const int d = static_cast<int>(state.range(0));
  const int stages = d == 64 ? 11 : 21;
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.0f, 0.1f);
  KeyCodebook cb(d, RopeLayout::HalfSplit);
  for (int j = 0; j < stages; ++j) {
    std::vector<float> x(64 * d / 2), y(64 * d / 2);
    for (float& v : x) v = g(rng) / static_cast<float>(1 + j);
    for (float& v : y) v = g(rng) / static_cast<float>(1 + j);
    cb.add_stage(x, y);
  }
  const std::vector<float> u = clustered_pairs(128, d, 11);
  std::vector<uint16_t> codes(static_cast<size_t>(128) * stages);
  for (auto _ : state) {
    cb.encode_batch(u.data(), 128, d, codes.data(), stages, false);
    benchmark::DoNotOptimize(codes.data());
  }
  state.counters["tokens/s"] = benchmark::Counter(128.0, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CommvqEncodeBlock)->Arg(64)->Arg(128)->Unit(benchmark::kMicrosecond);

struct ScoreSetup {
  int d, stages, G;
  int64_t n;
  KeyCodebook cb;
  Rope rope;
  RopeBlockTable blocks;
  std::vector<uint16_t> codes;
  std::vector<float> norms, q_pairs, table, scores, cs, kbuf, bases;
};

std::unique_ptr<ScoreSetup> score_setup(int d, int64_t n) {
  auto s = std::make_unique<ScoreSetup>();
  s->d = d;
  s->stages = d == 64 ? 11 : 21;
  s->G = d == 64 ? 3 : 4;  // SmolLM2-135M: 9/3; LLaMA-3.1-8B: 32/8
  s->n = n;
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 0.1f);
  s->cb = KeyCodebook(d, RopeLayout::HalfSplit);
  for (int j = 0; j < s->stages; ++j) {
    std::vector<float> x(64 * d / 2), y(64 * d / 2);
    for (float& v : x) v = g(rng);
    for (float& v : y) v = g(rng);
    s->cb.add_stage(x, y);
  }
  s->rope = Rope(d, 10000.0, RopeLayout::HalfSplit);
  s->blocks = RopeBlockTable(s->rope, 128);
  std::uniform_int_distribution<int> code(0, 4095);
  s->codes.resize(static_cast<size_t>(n) * s->stages);
  for (auto& c : s->codes) c = static_cast<uint16_t>(code(rng));
  s->norms.assign(static_cast<size_t>(n), 10.0f);
  s->q_pairs.resize(static_cast<size_t>(s->G) * d);
  for (float& v : s->q_pairs) v = g(rng);
  s->table.resize(commvq_query_table_floats(s->stages, d, s->G));
  s->scores.resize(static_cast<size_t>(s->G) * n);
  s->cs.resize(static_cast<size_t>(128) * d);
  s->kbuf.resize(static_cast<size_t>(128) * d);
  // Per-block cos/sin of the first position: fixed for a block's lifetime, so a cache keeps them.
  s->bases.resize(static_cast<size_t>((n + 127) / 128) * d);
  for (int64_t b = 0; b < (n + 127) / 128; ++b) s->blocks.base(static_cast<int32_t>(b * 128), s->bases.data() + b * d);
  return s;
}

enum class ScoreMode { Codes, DecodeFused, DecodeMaterialize };

void BM_CommvqScores(benchmark::State& state, ScoreMode mode) {
  const int d = static_cast<int>(state.range(0));
  const int64_t n = state.range(1);
  auto s = score_setup(d, n);
  const int R = s->stages, G = s->G, h = d / 2;
  for (auto _ : state) {
    if (mode == ScoreMode::Codes) {
      // Per query head: its U table (L2-sized), then every block against it.
      for (int g = 0; g < G; ++g) {
        commvq_query_table(s->cb.params(), R, d, s->q_pairs.data() + g * d, 1, s->table.data());
        for (int64_t b0 = 0; b0 < n; b0 += 128) {
          const int m = static_cast<int>(std::min<int64_t>(128, n - b0));
          s->blocks.fill_from_base(s->bases.data() + (b0 / 128) * d, m, s->cs.data());
          commvq_scores_codes(s->table.data(), R, d, 1, s->codes.data() + b0 * R, R, s->norms.data() + b0, s->cs.data(),
                              m, s->scores.data() + g * n + b0, n);
        }
      }
    }
    for (int64_t b0 = 0; b0 < n && mode != ScoreMode::Codes; b0 += 128) {
      const int m = static_cast<int>(std::min<int64_t>(128, n - b0));
      s->blocks.fill_from_base(s->bases.data() + (b0 / 128) * d, m, s->cs.data());
      const uint16_t* codes = s->codes.data() + b0 * R;
      float* out = s->scores.data() + b0;
      if (mode == ScoreMode::DecodeFused) {
        commvq_scores_decode(s->cb.params(), R, d, s->q_pairs.data(), G, codes, R, s->norms.data() + b0, s->cs.data(),
                             m, out, n);
      } else {
        // Decode (pair-split here, as HalfSplit is the identity layout), scale, rotate, then GEMM.
        s->cb.decode_batch(codes, R, m, s->kbuf.data(), d);
        for (int t = 0; t < m; ++t) {
          float* k = s->kbuf.data() + static_cast<size_t>(t) * d;
          const float* c = s->cs.data() + static_cast<size_t>(t) * d;
          const float nt = s->norms[b0 + t];
          for (int f = 0; f < h; ++f) {
            const float x = k[f] * nt, y = k[h + f] * nt;
            k[f] = x * c[f] - y * c[h + f];
            k[h + f] = x * c[h + f] + y * c[f];
          }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, G, m, d, 1.0f / std::sqrt(static_cast<float>(d)),
                    s->q_pairs.data(), d, s->kbuf.data(), d, 0.0f, out, static_cast<int>(n));
      }
    }
    benchmark::DoNotOptimize(s->scores.data());
    benchmark::ClobberMemory();
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

#define COMMVQ_SCORE_ARGS  \
  ->Args({64, 1024})       \
      ->Args({64, 4096})   \
      ->Args({64, 16384})  \
      ->Args({64, 65536})  \
      ->Args({128, 1024})  \
      ->Args({128, 4096})  \
      ->Args({128, 16384}) \
      ->Args({128, 65536}) \
      ->Unit(benchmark::kMicrosecond)
BENCHMARK_CAPTURE(BM_CommvqScores, codes, ScoreMode::Codes) COMMVQ_SCORE_ARGS;
BENCHMARK_CAPTURE(BM_CommvqScores, decode_fused, ScoreMode::DecodeFused) COMMVQ_SCORE_ARGS;
BENCHMARK_CAPTURE(BM_CommvqScores, decode_materialize, ScoreMode::DecodeMaterialize) COMMVQ_SCORE_ARGS;

}  // namespace
