#!/usr/bin/env bash
# `bench batch` and `bench decode` on the default model: every configuration is measured in each of
# the --rounds rounds, the reported time per step is the median round, tokens/s follows from it, the
# first configuration is the baseline (ratio 1). Speeds themselves are not asserted (benchmarks, not
# tests). Needs the default model (skips locally without it, fails under CI=true).
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

"$bin" bench decode --context 300 --decode-tokens 4 --rounds 2 --kv "fp16;q4_0" --json "$tmp/decode.json" -q \
  > "$tmp/decode.out"
cat "$tmp/decode.out"
python3 - "$tmp/decode.json" <<'PY'
import json, statistics, sys
j = json.load(open(sys.argv[1]))
m = j["methods"]
assert j["context"] == 300 and j["rounds"] == 2 and [r["kv"] for r in m] == ["fp16", "q4_0"], j
for r in m:
    rs = r["round_seconds_per_token"]
    assert len(rs) == 2 and abs(1.0 / r["tokens_per_s"] - statistics.median(rs)) < 1e-12, r
assert m[0]["ratio_vs_first"] == 1.0 and 0 < m[1]["kv_bytes"] < m[0]["kv_bytes"], m
print("bench decode: rounds, medians and KV bytes consistent")
PY
