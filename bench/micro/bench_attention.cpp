// Decode attention, one layer, one query token, through the KvCache seam:
//   Fp16      — the fp16 reference cache (fused fp16 kernels)
//   Kivi2     — KIVI-2 (k=2, v=2, G=32, R=128) native: dequantization fused into the kernels
//   Kivi2Deq  — KIVI-2 dequantize-then-attend: decode the whole cache to float, then attend
//               (kernels/cpu/attention.h), the naive path the fused kernels replace
//   Q8_0/Q4_0 — llama.cpp cache types, fused
//   Commvq2/Commvq1       — CommVQ native (window 128): scores from key codes, values as code sums
//                           times the codebook (docs/METHOD.md §6.1/§6.2); a random codebook of the shape (speed
//                           does not depend on what the codebook learned)
//   Commvq2Deq            — CommVQ decode-then-attend: rebuild every key and value, then attend
// Shapes: SmolLM2-135M (shape 0: 9 heads, 3 KV heads, d=64) and LLaMA-3.1-8B (shape 1: 32/8/128);
// contexts 1K–64K; 1 thread and all hardware threads.
// Counters: kv_bytes = bytes the cache stores for the layer (what the fused kernels read per step);
// bytes_read/s counts those bytes, plus for Kivi2Deq the float copy written and read back.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "commvq/commvq_codebook.h"
#include "commvq/kv_methods.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kv/kv_cache.h"
#include "kv/windowed_cache.h"

namespace cvq {
namespace {

struct Shape {
  int heads, kv_heads, d;
};
const Shape kShapes[] = {{9, 3, 64}, {32, 8, 128}};

KvGeometry geometry(const Shape& s) {
  KvGeometry g;
  g.n_layers = 1;
  g.n_head = s.heads;
  g.n_head_kv = s.kv_heads;
  g.head_dim = s.d;
  g.rope = Rope(s.d, 500000.0, RopeLayout::HalfSplit);
  return g;
}

// commvq:bits=B with a random codebook for the shape, written once per process to the temp folder.
std::string commvq_spec(int bits, int shape) {
  const auto path =
      std::filesystem::temp_directory_path() / ("cvq_bench_cb_" + std::to_string(::getpid()) + "_" +
                                                std::to_string(bits) + "_" + std::to_string(shape) + ".safetensors");
  // Removed when the process exits.
  static struct Cleanup {
    std::vector<std::filesystem::path> files;
    ~Cleanup() {
      for (const auto& f : files) std::filesystem::remove(f);
    }
  } cleanup;
  if (!std::filesystem::exists(path)) {
    random_commvq_codebook(geometry(kShapes[shape]), bits, true, 11).save(path.string());
    cleanup.files.push_back(path);
  }
  return "commvq:bits=" + std::to_string(bits) + ",window=128,codebook=" + path.string();
}

// One filled cache per (spec, shape, context), built on first use and kept.
KvCache& filled_cache(const std::string& spec, int shape, int64_t ctx) {
  static std::map<std::tuple<std::string, int, int64_t>, std::unique_ptr<KvCache>> caches;
  auto& slot = caches[{spec, shape, ctx}];
  if (!slot) {
    const KvGeometry g = geometry(kShapes[shape]);
    slot = make_kv_cache(spec, g);
    const int D = g.kv_dim();
    const int chunk = 4096;
    std::mt19937 rng(42);
    std::normal_distribution<float> nd;
    std::vector<float> k(static_cast<size_t>(chunk) * D), v(k.size());
    std::vector<int32_t> pos(chunk);
    for (int64_t done = 0; done < ctx; done += chunk) {
      const int n = static_cast<int>(std::min<int64_t>(chunk, ctx - done));
      for (int i = 0; i < n * D; ++i) {
        k[i] = (1.0f + static_cast<float>(i % 7)) * nd(rng);
        v[i] = nd(rng);
      }
      for (int i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(done + i);
      slot->append(0, k.data(), v.data(), pos.data(), n);
    }
    if (auto* w = dynamic_cast<WindowedCache*>(slot.get())) w->settle();
  }
  return *slot;
}

std::vector<float> query(const KvGeometry& g) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> q(g.q_dim());
  for (auto& x : q) x = nd(rng);
  return q;
}

void use_threads(benchmark::State& state) {
  const int t = static_cast<int>(state.range(2));
  if (ThreadPool::global().size() != t) ThreadPool::set_global_threads(t);
}

void run_fused(benchmark::State& state, const std::string& spec) {
  const int shape = static_cast<int>(state.range(0));
  const int64_t ctx = state.range(1);
  use_threads(state);
  KvCache& cache = filled_cache(spec, shape, ctx);
  const KvGeometry& g = cache.geometry();
  std::vector<float> q = query(g), out(q.size());
  const int32_t pos = static_cast<int32_t>(ctx - 1);
  for (auto _ : state) {
    cache.attend(0, q.data(), &pos, 1, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["kv_bytes"] = static_cast<double>(cache.bytes());
  state.counters["bytes_read/s"] = benchmark::Counter(
      static_cast<double>(cache.bytes()) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Fp16(benchmark::State& s) { run_fused(s, "fp16"); }
void BM_Kivi2(benchmark::State& s) { run_fused(s, "kivi:k=2,v=2,group=32,window=128"); }
void BM_Q8_0(benchmark::State& s) { run_fused(s, "q8_0"); }
void BM_Q4_0(benchmark::State& s) { run_fused(s, "q4_0"); }

void BM_Commvq2(benchmark::State& s) { run_fused(s, commvq_spec(2, static_cast<int>(s.range(0)))); }
void BM_Commvq1(benchmark::State& s) { run_fused(s, commvq_spec(1, static_cast<int>(s.range(0)))); }

void run_decode_then_attend(benchmark::State& state, const std::string& spec) {
  const int shape = static_cast<int>(state.range(0));
  const int64_t ctx = state.range(1);
  use_threads(state);
  auto& cache = dynamic_cast<WindowedCache&>(filled_cache(spec, shape, ctx));
  const KvGeometry& g = cache.geometry();
  std::vector<float> q = query(g), out(q.size());
  std::vector<float> k(static_cast<size_t>(ctx) * g.kv_dim()), v(k.size());
  const int32_t visible = static_cast<int32_t>(ctx);
  for (auto _ : state) {
    cache.materialize(0, k.data(), v.data());
    AttentionArgs a;
    a.q = q.data();
    a.n_q = 1;
    a.q_stride = g.q_dim();
    a.n_head = g.n_head;
    a.n_head_kv = g.n_head_kv;
    a.head_dim = g.head_dim;
    a.k = k.data();
    a.v = v.data();
    a.n_ctx = static_cast<int>(ctx);
    a.kv_stride = g.kv_dim();
    a.n_visible = &visible;
    a.out = out.data();
    attention_f32(a);
    benchmark::DoNotOptimize(out.data());
  }
  const double touched = static_cast<double>(cache.bytes()) + 2.0 * 2.0 * 4.0 * static_cast<double>(k.size());
  state.counters["kv_bytes"] = static_cast<double>(cache.bytes());
  state.counters["bytes_read/s"] =
      benchmark::Counter(touched * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Kivi2Deq(benchmark::State& s) { run_decode_then_attend(s, "kivi:k=2,v=2,group=32,window=128"); }
void BM_Commvq2Deq(benchmark::State& s) { run_decode_then_attend(s, commvq_spec(2, static_cast<int>(s.range(0)))); }

void contexts(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "ctx", "threads"});
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int threads : {1, hw})
    for (int shape : {0, 1})
      for (int64_t ctx : {1024, 4096, 16384, 32768, 65536}) b->Args({shape, ctx, threads});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(BM_Fp16)->Apply(contexts);
BENCHMARK(BM_Kivi2)->Apply(contexts);
BENCHMARK(BM_Kivi2Deq)->Apply(contexts);
BENCHMARK(BM_Q8_0)->Apply(contexts);
BENCHMARK(BM_Q4_0)->Apply(contexts);
BENCHMARK(BM_Commvq2)->Apply(contexts);
BENCHMARK(BM_Commvq1)->Apply(contexts);
BENCHMARK(BM_Commvq2Deq)->Apply(contexts);

}  // namespace
}  // namespace cvq
