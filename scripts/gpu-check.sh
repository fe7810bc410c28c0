#!/usr/bin/env bash
# The GPU check in one command, for a machine with an NVIDIA GPU and the CUDA toolkit: configures
# with -DCOMMVQ_CUDA=ON, builds, runs the GPU tests (every GPU op against its CPU op, GPU forward and
# perplexity vs CPU) and the GPU benchmarks (decode attention of one LLaMA-3.1-8B layer at 8K/32K/128K:
# fp16 vs decode-then-attend vs CommVQ on codes; peak memory at 120K context, fp16 vs CommVQ-1/-2,
# random 8B weights), and writes everything to the results folder:
#   scripts/gpu-check.sh [OUT_DIR]        (default: $OUT, else out/gpu-check)
# Needs the build dependencies of scripts/setup.sh (Ninja, Eigen, CLI11, nlohmann-json, OpenBLAS, PCRE2,
# GoogleTest); Google Benchmark is not needed here.
# Environment: JOBS (default: nproc), CUDA_ARCH (default 90: H100/H200), BUILD_DIR (default build-cuda).
# Sized for an H200 with 16 cores: about 2-4 minutes of build, well under 8 minutes in all.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-${OUT:-$root/out/gpu-check}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
jobs=${JOBS:-$(nproc)}
build=${BUILD_DIR:-build-cuda}
arch=${CUDA_ARCH:-90}
status=0
t0=$(date +%s)
note() { echo "[gpu-check $(( $(date +%s) - t0 ))s] $*" | tee -a "$out/gpu-check.log"; }

nvcc=$(command -v nvcc || true)
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
if [ -z "$nvcc" ]; then
  note "nvcc not found: install the CUDA toolkit (or put nvcc on PATH)"
  exit 1
fi
(nvidia-smi || echo "nvidia-smi failed") > "$out/nvidia-smi.txt" 2>&1

note "configure ($build, CUDA arch $arch, $nvcc)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOMMVQ_CUDA=ON -DCOMMVQ_BUILD_BENCH=OFF -DCMAKE_CUDA_COMPILER="$nvcc" \
      -DCMAKE_CUDA_ARCHITECTURES="$arch" > "$out/configure.log" 2>&1 || { note "configure failed (see configure.log)"; exit 1; }
note "build (-j $jobs)"
cmake --build "$build" -j "$jobs" --target commvq-bench gpu_tests > "$out/build.log" 2>&1 || { note "build failed (see build.log)"; tail -30 "$out/build.log"; exit 1; }
bin="$build/commvq-bench"

note "GPU tests"
"$build/tests/gpu_tests" --gtest_output="json:$out/gpu_tests.json" > "$out/gpu_tests.log" 2>&1 || status=1
tail -25 "$out/gpu_tests.log" | tee -a "$out/gpu-check.log"
COMMVQ_BIN="$bin" bash tests/cli/gpu_device.sh > "$out/gpu_cli_device.log" 2>&1 || { status=1; note "gpu_cli_device FAILED"; }

if ! "$bin" bench gpu-attention --context 256 --reps 1 > "$out/probe.log" 2>&1; then
  note "no usable CUDA device: $(tail -1 "$out/probe.log"); benchmarks skipped"
  exit 1
fi

note "bench gpu-attention (8K / 32K / 128K, LLaMA-3.1-8B layer shapes)"
for bits in 2 1; do
  "$bin" bench gpu-attention --context 8192,32768,131072 --bits "$bits" --reps 20 \
         --json "$out/gpu_attention_${bits}bit.json" 2>&1 | tee "$out/gpu_attention_${bits}bit.txt" || status=1
done

note "bench gpu-memory (llama-3.1-8b, random weights, 120K context)"
for kv in fp16 commvq-1 commvq-2; do  # one process each: clean driver numbers
  "$bin" bench gpu-memory --arch llama-3.1-8b --random-weights --kv "$kv" --context 122880 --decode-steps 8 \
         --json "$out/gpu_memory_${kv}.json" 2>&1 | tee "$out/gpu_memory_${kv}.txt" || status=1
done

note "bench gpu-em (key EM iteration, 65536 tokens, d=128: CUDA vs CPU)"
"$bin" bench gpu-em --tokens 65536 --head-dim 128 --iterations 3 --json "$out/gpu_em.json" 2>&1 | tee "$out/gpu_em.txt" || status=1

model="${COMMVQ_MODEL:-$HOME/.cache/commvq-bench/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
wiki="${COMMVQ_DATA:-$root/data}/text/wikitext-2-raw/wiki.test.raw"
if [ -f "$model" ] && [ -f "$wiki" ]; then
  note "perplexity, default model, 8192 tokens: CPU vs CUDA"
  for dev in cpu cuda; do
    "$bin" eval --task perplexity --model "$model" --device "$dev" --max-tokens 8192 --ctx 2048 --quiet \
           --json "$out/perplexity_${dev}.json" 2>&1 | tee "$out/perplexity_${dev}.txt" || status=1
  done
else
  note "perplexity skipped: $model or $wiki is missing (scripts/setup.sh installs them)"
fi

python3 - "$out" <<'PY' || note "summary.md not written (python3 failed)"
import json, os, sys
out = sys.argv[1]
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
gib = lambda b: f"{b / 2**30:.2f} GiB"
lines = ["# GPU check", ""]
t = load("gpu_tests.json")
if t:
    skipped = sum(1 for s in t.get("testsuites", []) for c in s.get("testsuite", []) if c.get("result") == "SKIPPED")
    lines += [f"GPU tests: {t['tests']} run, {t['failures']} failed, {skipped} skipped", ""]
for bits in (2, 1):
    a = load(f"gpu_attention_{bits}bit.json")
    if not a: continue
    lines += [f"## Decode attention, one layer, one token ({a['device']}, CommVQ {bits}-bit, "
              f"{a['n_head']} q / {a['n_head_kv']} kv heads, d={a['head_dim']}; median of {a['reps']})", "",
              "| context | fp16 ms | decode-then-attend ms | CommVQ on codes ms | max abs diff |", "|---|---|---|---|---|"]
    for r in a["runs"]:
        lines.append(f"| {r['context']} | {r['fp16_ms']:.3f} | {r['decode_then_attend_ms']:.3f} | "
                     f"{r['commvq_codes_ms']:.3f} | {r['max_abs_diff_codes_vs_decoded']:.1e} |")
    lines.append("")
rows = [load(f"gpu_memory_{kv}.json") for kv in ("fp16", "commvq-1", "commvq-2")]
rows = [r for r in rows if r]
if rows:
    lines += [f"## Peak device memory, {rows[0]['arch']} (random weights), {rows[0]['context']} tokens, decoding", "",
              "| KV | weights | KV cache (allocated) | codebooks | analytical total | allocator peak | driver used | decode ms/token |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kv']} | {gib(r['weights_bytes'])} | {gib(r['cache_allocated_bytes'])} | "
                     f"{gib(r['codebook_bytes'])} | {gib(r['analytic_total_bytes'])} | {gib(r['allocator_peak_bytes'])} | "
                     f"{gib(r['driver_used_delta_bytes'])} | {r['decode_ms_per_token']:.2f} |")
    lines.append("")
e = load("gpu_em.json")
if e:
    lines += [f"## Key EM iteration ({e['tokens']} tokens, d={e['head_dim']}, tau {e['tau']})", "",
              f"CPU {e['cpu_ms_per_iteration']:.1f} ms, CUDA {e['gpu_ms_per_iteration']:.1f} ms per iteration; "
              f"last loss CPU {e['cpu_last_loss']:.6e}, CUDA {e['gpu_last_loss']:.6e}", ""]
pc, pg = load("perplexity_cpu.json"), load("perplexity_cuda.json")
if pc and pg:
    a, b = pc["runs"][0]["perplexity"], pg["runs"][0]["perplexity"]
    lines += ["## Perplexity, default model (WikiText-2, 8192 tokens)", "",
              f"CPU {a:.4f}, CUDA {b:.4f}, relative difference {abs(a - b) / a:.2e}", ""]
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines))
print("\n".join(lines))
PY

note "done (status $status); results in $out"
exit $status
