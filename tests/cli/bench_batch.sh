#!/usr/bin/env bash
# `bench batch` on the default model: every batch size is measured in each of the --rounds rounds,
# the reported time per step is the median round, tokens/s = B / that time, the first size is the
# baseline (ratio 1). Speeds themselves are not asserted (benchmarks, not tests). Needs the default
# model (skips locally without it, fails under CI=true).
set -euo pipefail
bin="${COMMVQ_BIN:?set COMMVQ_BIN to the commvq-bench binary}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$bin" info --quiet > /dev/null 2> "$tmp/err"; then
  if [ "${CI:-}" = "true" ]; then echo "FAIL: the default model is missing: $(cat "$tmp/err")"; exit 1; fi
  echo "SKIP: $(cat "$tmp/err")"; exit 77
fi
"$bin" bench batch --batch 1,3 --prompt-tokens 64 --decode-tokens 6 --rounds 3 --kv "fp16;kivi:k=2,v=2" \
  --json "$tmp/batch.json" -q > "$tmp/out"
cat "$tmp/out"
python3 - "$tmp/batch.json" <<'PY'
import json, statistics, sys
j = json.load(open(sys.argv[1]))
runs = j["runs"]
assert j["rounds"] == 3 and [r["batch"] for r in runs] == [1, 3], j
for r in runs:
    rs = r["round_seconds_per_step"]
    assert len(rs) == 3 and all(s > 0 for s in rs), r
    assert abs(r["seconds_per_step"] - statistics.median(rs)) < 1e-12, r
    assert abs(r["tokens_per_s"] - r["batch"] / r["seconds_per_step"]) < 1e-9 * r["tokens_per_s"], r
assert runs[0]["ratio_vs_first"] == 1.0 and runs[0]["kv"] == "fp16", runs[0]
assert runs[1]["kv"] == "fp16 | kivi:k=2,v=2", runs[1]
print("bench batch: rounds, medians and ratios consistent")
PY
"$bin" bench batch --batch 1 --decode-tokens 2 --rounds 3 -q > /dev/null 2> "$tmp/err" && {
  echo "FAIL: more rounds than decode steps was accepted"; exit 1; }
grep -q "rounds" "$tmp/err" || { echo "FAIL: unclear error:"; cat "$tmp/err"; exit 1; }
