#!/usr/bin/env bash
# CommVQ codebooks (and, for a named model, a KVQuant calibration) where the experiment configs look
# for them: collect KV activations on the public-domain books, then train 2-bit and 1-bit codebooks.
# Every step resumes if interrupted, and gives the same bytes for the same inputs whatever --threads.
#   scripts/make-codebooks.sh [--model NAME] [--full] [--key-center] [--tokens N] [--value-steps S] [--matmul fp32|bf16]
# Default model (smollm2-135m), no --full: sized for README command 1 (settings below; the README
# states the measured time). --full: the `train` defaults (16K key tokens, 24 EM iterations, 1500
# value steps, 4 refit rounds), which results/codebooks/*.full.train.json were made with.
# --model NAME (a name from datasets/models.tsv): that model's codebooks with the `train` defaults,
# activations collected with bf16 prefill arithmetic (the Qwen quality configs evaluate with it too),
# plus its KVQuant calibration (results/codebooks/NAME.kvquant.safetensors). --key-center: `train --key-center`
# (docs/METHOD.md §7.4; results/qwen2.5-coder-1.5b/README.md measures it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=smollm2-135m
named=0
full=0
tokens=32768
value_steps=""
matmul=""
center=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; named=1; shift 2 ;;
    --full) full=1; shift ;;
    --key-center) center=(--key-center); shift ;;
    --tokens) tokens=$2; shift 2 ;;
    --value-steps) value_steps=$2; shift 2 ;;
    --matmul) matmul=$2; shift 2 ;;
    *) echo "make-codebooks: unknown option $1 (expected --model, --full, --key-center, --tokens, --value-steps, --matmul)" >&2; exit 2 ;;
  esac
done
if ! grep -v '^#' datasets/models.tsv | cut -f1 | grep -qx "$model"; then
  echo "make-codebooks: unknown model '$model' (known: $(grep -v '^#' datasets/models.tsv | cut -f1 | tr '\n' ' '))" >&2
  exit 2
fi
train_opts=()
[ "$named" = 1 ] || [ "$full" = 1 ] ||
  train_opts=(--tokens 8192 --iters 16 --value-steps 750 --value-refit-rounds 2 --value-refit-tokens 8192)
[ -n "$value_steps" ] && train_opts+=(--value-steps "$value_steps")
[ -n "$matmul" ] || { [ "$named" = 1 ] && matmul=bf16 || matmul=fp32; }

bin=${COMMVQ_BENCH:-./build/commvq-bench}  # another binary (e.g. a copy while the build tree changes)
acts=out/activations
[ "$model" = smollm2-135m ] || acts="out/$model/activations"
mkdir -p results/codebooks
"$bin" collect --model "$model" --matmul "$matmul" --tokens "$tokens" --out "$acts"
for bits in 2 1; do
  out="results/codebooks/$model-commvq-${bits}bit.safetensors"
  if [ -f "$out" ]; then echo "codebooks: $out exists (delete it to train again)"; continue; fi
  "$bin" train --model "$model" --activations "$acts" --bits "$bits" "${train_opts[@]}" "${center[@]}" --out "$out" \
    --json "results/codebooks/$model-commvq-${bits}bit.train.json"
done
if [ "$named" = 1 ]; then
  calib="results/codebooks/$model.kvquant.safetensors"
  if [ -f "$calib" ]; then echo "kvquant: $calib exists (delete it to calibrate again)"
  else "$bin" calibrate-kvquant --model "$model" --matmul "$matmul" --out "$calib"; fi
fi
