#!/usr/bin/env bash
# `eval --task T --name value ...` is a one-task grid built from the command line: its records equal
# those of the same task and methods run from a config file; commas sweep; mistakes are one clear
# error. Needs the default model and data (skips locally without them, fails under CI=true).
set -euo pipefail
bin="${COMMVQ_BIN:?set COMMVQ_BIN to the commvq-bench binary}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$bin" info --quiet > /dev/null 2> "$tmp/err"; then
  if [ "${CI:-}" = "true" ]; then echo "FAIL: the default model is missing: $(cat "$tmp/err")"; exit 1; fi
  echo "SKIP: $(cat "$tmp/err")"; exit 77
fi
fail=0
kivi="kivi:k=2,v=2,group=32,window=128"

"$bin" eval --task passkey --context-tokens 512 --depths 2 --per-depth 1 --kv fp16 --kv "$kivi" \
  --out "$tmp/cli" --quiet > "$tmp/cli.out"
grep -q "^passkey  *fp16  *complete" "$tmp/cli.out" || { echo "FAIL: no fp16 row:"; cat "$tmp/cli.out"; fail=1; }
cat > "$tmp/config.json" <<JSON
{"name": "same", "seed": 1234,
 "methods": [{"label": "fp16", "kv": "fp16"}, {"label": "kivi_k=2_v=2_group=32_window=128", "kv": "$kivi"}],
 "tasks": [{"name": "passkey", "task": "passkey", "context_tokens": 512, "depths": 2, "per_depth": 1}]}
JSON
"$bin" eval --config "$tmp/config.json" --out "$tmp/grid" --quiet > /dev/null
python3 - "$tmp/cli/runs/passkey" "$tmp/grid/runs/passkey" <<'PY' || fail=1
import json, os, sys
a, b = sys.argv[1:]
keys = ("id", "prediction", "score", "prompt_hash", "generated_tokens", "kv_bytes")
for m in sorted(os.listdir(b)):
    ra = [json.loads(l) for l in open(os.path.join(a, m, "samples.jsonl"))]
    rb = [json.loads(l) for l in open(os.path.join(b, m, "samples.jsonl"))]
    if len(ra) != 2 or [[r[k] for k in keys] for r in ra] != [[r[k] for k in keys] for r in rb]:
        print(f"FAIL: {m}: records differ between eval --task and eval --config"); sys.exit(1)
    print(f"{m}: {len(ra)} records identical (prediction, score, prompt hash, KV bytes)")
PY

# A comma sweeps: one instance per value. Without --out the records are not kept.
"$bin" eval --task passkey --context-tokens 256,512 --depths 1 --per-depth 1 --kv fp16 --quiet > "$tmp/sweep.out"
for inst in passkey-256 passkey-512; do
  grep -q "^$inst " "$tmp/sweep.out" || { echo "FAIL: no $inst row:"; cat "$tmp/sweep.out"; fail=1; }
done
grep -q "records not kept" "$tmp/sweep.out" || { echo "FAIL: temporary records not reported"; fail=1; }

expect_error() {  # expect_error WHAT PATTERN ARGS...
  local what=$1 pattern=$2; shift 2
  if "$bin" eval "$@" > "$tmp/e.out" 2> "$tmp/e.err"; then echo "FAIL $what: exit 0"; fail=1; return; fi
  grep -q -- "$pattern" "$tmp/e.err" || { echo "FAIL $what: message lacks '$pattern':"; cat "$tmp/e.err"; fail=1; return; }
  echo "ok $what: $(head -1 "$tmp/e.err")"
}
expect_error "unknown task option" "unknown option 'bogus'" --task passkey --bogus 3 --quiet
expect_error "window option on a task without windows" "unknown option 'ctx'" --task passkey --ctx 512 --quiet
expect_error "perplexity-only flag on a grid task" "max-tokens goes with --task perplexity" --task passkey \
  --max-tokens 512 --quiet
# --data / --ctx / --chunk reach a grid task that has text windows (agreement) as its own options.
expect_error "agreement --data" "no-such-text.txt" --task agreement --data "$tmp/no-such-text.txt" --ctx 64 \
  --windows 1 --kv q8_0 --quiet
"$bin" eval --task agreement --ctx 64 --chunk 16 --windows 1 --kv q8_0 --quiet > "$tmp/agree.out"
grep -q "^agreement  *q8_0  *complete" "$tmp/agree.out" || { echo "FAIL: agreement --ctx:"; cat "$tmp/agree.out"; fail=1; }
expect_error "option without value" "needs a value" --task passkey --depths
expect_error "unknown option with perplexity" "unknown option '--bogus'" --task perplexity --bogus 3
[ "$fail" -eq 0 ] && echo "PASS"
exit "$fail"
