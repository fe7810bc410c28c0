#!/usr/bin/env bash
# `collect` and `train` give bit-identical files for the same inputs and seed, whatever --threads:
# a small collection (two resume chunks) with 1, 2 and 3 threads, then two layers trained from it with
# 1 and 2 threads; every file's sha256 must agree. Needs the default model and data (skips locally
# without them, fails under CI=true).
set -euo pipefail
bin="${COMMVQ_BIN:?set COMMVQ_BIN to the commvq-bench binary}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$bin" info --quiet > "$tmp/info" 2> "$tmp/err"; then
  if [ "${CI:-}" = "true" ]; then echo "FAIL: the default model is missing: $(cat "$tmp/err")"; exit 1; fi
  echo "SKIP: $(cat "$tmp/err")"; exit 77
fi

fail=0
same_files() {  # same_files WHAT DIR_A DIR_B: every file of A (and no other) in B, byte for byte
  local what=$1 a=$2 b=$3
  (cd "$a" && find . -type f | sort) > "$tmp/list_a"
  (cd "$b" && find . -type f | sort) > "$tmp/list_b"
  if ! cmp -s "$tmp/list_a" "$tmp/list_b"; then
    echo "FAIL $what: different file lists"; diff "$tmp/list_a" "$tmp/list_b" | head; fail=1; return
  fi
  local n=0
  while read -r f; do
    n=$((n + 1))
    if ! cmp -s "$a/$f" "$b/$f"; then echo "FAIL $what: $f differs"; fail=1; fi
  done < "$tmp/list_a"
  echo "$what: $n files, $(cd "$a" && find . -type f | sort | xargs sha256sum | sha256sum | cut -c1-16) (sha256 of the sha256 list)"
}

collect_opts=(--tokens 1536 --ctx 512 --chunk-tokens 1024 --quiet)
for t in 1 2 3; do
  if ! "$bin" collect "${collect_opts[@]}" --threads "$t" --out "$tmp/acts-$t" > /dev/null 2> "$tmp/err"; then
    if grep -q "jane_austen" "$tmp/err" && [ "${CI:-}" != "true" ]; then echo "SKIP: $(cat "$tmp/err")"; exit 77; fi
    echo "FAIL collect --threads $t: $(cat "$tmp/err")"; exit 1
  fi
done
same_files "collect 1 vs 2 threads" "$tmp/acts-1" "$tmp/acts-2"
same_files "collect 1 vs 3 threads" "$tmp/acts-1" "$tmp/acts-3"

train_opts=(--activations "$tmp/acts-1" --bits 2 --layers 0,17 --tokens 1024 --iters 3 --value-steps 40
            --value-refit-rounds 1 --value-refit-tokens 512 --quiet)
for t in 1 2; do
  "$bin" train "${train_opts[@]}" --threads "$t" --out "$tmp/cb-$t/cb.safetensors" > /dev/null
done
same_files "train 1 vs 2 threads" "$tmp/cb-1" "$tmp/cb-2"
sha256sum "$tmp"/cb-1/cb.safetensors.parts/* "$tmp"/cb-2/cb.safetensors.parts/* | sed "s|$tmp/||"
[ "$fail" -eq 0 ] && echo "PASS: identical bytes for every thread count"
exit "$fail"
