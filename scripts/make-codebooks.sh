#!/usr/bin/env bash
# CommVQ codebooks for the default model, where experiments/quick.json looks for them:
# collect KV activations on the public-domain books, then train 2-bit and 1-bit codebooks.
# Both steps resume if interrupted. Expect roughly 20-30 minutes on 2 cores.
#   scripts/make-codebooks.sh [--tokens N] [--value-steps S]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tokens=32768
value_steps=1500
while [ $# -gt 0 ]; do
  case "$1" in
    --tokens) tokens=$2; shift 2 ;;
    --value-steps) value_steps=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bin=./build/commvq-bench
acts=out/activations
mkdir -p results/codebooks
"$bin" collect --tokens "$tokens" --out "$acts"
for bits in 2 1; do
  out="results/codebooks/smollm2-135m-commvq-${bits}bit.safetensors"
  if [ -f "$out" ]; then echo "codebooks: $out exists"; continue; fi
  "$bin" train --activations "$acts" --bits "$bits" --value-steps "$value_steps" --out "$out" \
    --json "results/codebooks/smollm2-135m-commvq-${bits}bit.train.json"
done
