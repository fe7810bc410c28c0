#!/usr/bin/env bash
# Kill-and-resume check on a real run: an experiment grid run straight through, and the same grid
# killed (SIGKILL) partway and rerun into a second folder, must give the same per-sample records and
# the same summary (timing fields aside). Exits non-zero if they differ.
#   scripts/check-resume.sh [--config experiments/quick.json] [--tasks passkey-2k] [--limit 4] [--kill-after 10]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
config=experiments/quick.json
tasks=passkey-2k
limit=4
kill_after=10
kv=(--kv "fp16" --kv "kivi-2=kivi:k=2,v=2,group=32,window=128")
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --kill-after) kill_after=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bin=${COMMVQ_BIN:-./build/commvq-bench}
work=$(mktemp -d "${TMPDIR:-/tmp}/commvq-resume.XXXXXX")
trap 'rm -rf "$work"' EXIT
args=(eval --config "$config" --tasks "$tasks" --limit "$limit" "${kv[@]}" --quiet)

echo "== uninterrupted run"
t0=$(date +%s)
"$bin" "${args[@]}" --out "$work/full" > "$work/full.log"
echo "   $(( $(date +%s) - t0 )) s"

echo "== run killed after ${kill_after} s"
"$bin" "${args[@]}" --out "$work/resumed" > "$work/killed.log" 2>&1 &
pid=$!
sleep "$kill_after"
if kill -9 "$pid" 2> /dev/null; then
  wait "$pid" 2> /dev/null || true
  echo "   killed; samples on disk: $(cat "$work"/resumed/runs/*/*/samples.jsonl 2> /dev/null | wc -l)"
else
  echo "   finished before the kill: lower --kill-after" >&2
  exit 1
fi
echo "== rerun (resumes)"
"$bin" "${args[@]}" --out "$work/resumed" > "$work/resumed.log"

python3 - "$work/full" "$work/resumed" <<'EOF'
import glob, json, os, sys
full, resumed = sys.argv[1], sys.argv[2]
TIMING = {"timing", "wall_seconds", "session_seconds", "seconds", "started", "finished", "host", "tokens_per_s"}
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
def records(d):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "runs", "*", "*", "samples.jsonl"))):
        rows = [strip(json.loads(l)) for l in open(f) if l.strip()]
        out[os.path.relpath(f, d)] = sorted(rows, key=lambda r: str(r.get("id")))
    return out
def summary(d):
    s = json.load(open(os.path.join(d, "summary.json")))
    return sorted((strip(r) for r in s["runs"]), key=lambda r: (r["task"], r["method"]))
ra, rb = records(full), records(resumed)
sa, sb = summary(full), summary(resumed)
n = sum(len(v) for v in ra.values())
print(f"   samples: {n} uninterrupted, {sum(len(v) for v in rb.values())} killed+resumed")
for r in sa:
    print(f"   {r['task']:<16} {r['method']:<8} score {r['score']} n {r['n']} status {r['status']}")
ok = ra == rb and sa == sb
print("RESUME CHECK:", "identical records and summary" if ok else "DIFFERENT")
sys.exit(0 if ok else 1)
EOF
