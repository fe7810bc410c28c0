#!/usr/bin/env bash
# `--device cuda` through the CLI of a CUDA build: without a usable device, a clear error and a
# non-zero exit; with one, the GPU attention benchmark runs and writes its JSON.
set -u
bin="${COMMVQ_BIN:?set COMMVQ_BIN to the commvq-bench binary}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" bench gpu-attention --context 1024,4096 --reps 3 --json "$tmp/att.json" > "$tmp/out" 2> "$tmp/err"
rc=$?
if [ $rc -ne 0 ]; then
  if [ $rc -lt 128 ] && grep -q "bench gpu-attention: no CUDA device was found" "$tmp/err"; then
    "$bin" eval --task perplexity --device cuda --model /nonexistent.gguf > /dev/null 2> "$tmp/err2"
    rc2=$?
    if [ $rc2 -ne 0 ] && [ $rc2 -lt 128 ] && grep -q -- "--device cuda: no CUDA device was found" "$tmp/err2"; then
      echo "no CUDA device: both commands fail with a clear message (as they must)"
      exit 0
    fi
    echo "FAIL: eval --device cuda without a device: exit $rc2"; cat "$tmp/err2"; exit 1
  fi
  echo "FAIL: bench gpu-attention: exit $rc"; cat "$tmp/err"; exit 1
fi
grep -q '"commvq_codes_ms"' "$tmp/att.json" || { echo "FAIL: no JSON results"; exit 1; }
cat "$tmp/out"
