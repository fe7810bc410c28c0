#!/usr/bin/env bash
# CommVQ codebooks for the default model, where experiments/quick.json looks for them:
# collect KV activations on the public-domain books, then train 2-bit and 1-bit codebooks.
# Both steps resume if interrupted, and give the same bytes for the same inputs whatever --threads.
#   scripts/make-codebooks.sh [--full] [--tokens N] [--value-steps S]
# Default: sized for README command 1 (about 8 minutes on 2 cores; settings below). --full: the
# `train` defaults (16K key tokens, 24 EM iterations, 1500 value steps, 4 refit rounds; about
# 16 minutes), which the reports in results/codebooks/*.full.train.json and
# results/commvq_perplexity.md were made with.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tokens=32768
train_opts=(--tokens 8192 --iters 16 --value-steps 750 --value-refit-rounds 2 --value-refit-tokens 8192)
value_steps=""
while [ $# -gt 0 ]; do
  case "$1" in
    --full) train_opts=(); shift ;;
    --tokens) tokens=$2; shift 2 ;;
    --value-steps) value_steps=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$value_steps" ] && train_opts+=(--value-steps "$value_steps")
bin=./build/commvq-bench
acts=out/activations
mkdir -p results/codebooks
"$bin" collect --tokens "$tokens" --out "$acts"
for bits in 2 1; do
  out="results/codebooks/smollm2-135m-commvq-${bits}bit.safetensors"
  if [ -f "$out" ]; then echo "codebooks: $out exists (delete it to train again)"; continue; fi
  "$bin" train --activations "$acts" --bits "$bits" "${train_opts[@]}" --out "$out" \
    --json "results/codebooks/smollm2-135m-commvq-${bits}bit.train.json"
done
