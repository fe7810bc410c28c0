#!/usr/bin/env bash
# The grid as a Slurm job array on a real one-node Slurm (scripts/slurm/local-cluster.sh): a 3-shard
# array of a small grid plus the dependent merge job; one shard is cancelled after its first record
# and resubmitted. The merged tables and records must equal an unsharded run's. Needs root, Debian's
# slurmctld/slurmd/slurm-client/munge (scripts/setup.sh) and the default model: skips without them
# locally, fails under CI=true.
set -euo pipefail
bin="${COMMVQ_BIN:?set COMMVQ_BIN to the commvq-bench binary}"
root=$(cd "$(dirname "$0")/../.." && pwd)
skip() {
  if [ "${CI:-}" = "true" ]; then echo "FAIL: $1"; exit 1; fi
  echo "SKIP: $1"; exit 77
}
command -v slurmctld > /dev/null && command -v munged > /dev/null || skip "Slurm or munge is not installed"
[ "$(id -u)" = 0 ] || skip "the local Slurm runs its daemons as root"
tmp=$(mktemp -d)
"$bin" info --quiet > /dev/null 2> "$tmp/err" || skip "the default model is missing: $(cat "$tmp/err")"
export SLURM_TEST_PORT=$((17000 + ($$ % 500) * 2))
cleanup() { bash "$root/scripts/slurm/local-cluster.sh" stop "$tmp/cluster" || true; rm -rf "$tmp"; }
trap cleanup EXIT
start=$(date +%s)
eval "$(bash "$root/scripts/slurm/local-cluster.sh" start "$tmp/cluster")"
cat > "$tmp/grid.json" <<JSON
{"name": "slurm-test", "seed": 7,
 "methods": [{"label": "fp16", "kv": "fp16"}, {"label": "kivi-2", "kv": "kivi:k=2,v=2,group=32,window=128"}],
 "tasks": [{"name": "passkey", "task": "passkey", "context_tokens": 1024, "depths": 4, "per_depth": 3},
           {"name": "kv", "task": "kv_retrieval", "context_tokens": 512, "depths": 2, "per_depth": 2}]}
JSON
"$bin" eval --config "$tmp/grid.json" --out "$tmp/single" --quiet > /dev/null
"$bin" tables --results "$tmp/single" --no-plots > /dev/null

cd "$tmp"  # sbatch writes the jobs' slurm-*.out files into the submit directory
export COMMVQ_BIN="$bin"
read -r array merge < <(bash "$root/scripts/slurm/submit.sh" "$tmp/grid.json" "$tmp/sharded" 3 1)
echo "submitted array $array, merge $merge"
# Cancel shard 2 as soon as it has written its first record (a kill midway), then resubmit it.
shard2="$tmp/sharded/runs/passkey/fp16/samples.shard-2-of-3.jsonl"
for _ in $(seq 1 600); do
  [ -s "$shard2" ] && break
  sleep 0.1
done
scancel "${array}_2"
killed_at=$(wc -l < "$shard2" 2> /dev/null || echo 0)
wait_jobs() {
  for _ in $(seq 1 600); do
    [ -z "$(squeue -h -j "$1" 2> /dev/null)" ] && return 0
    sleep 0.5
  done
  echo "FAIL: jobs $1 did not finish"; exit 1
}
wait_jobs "$array,$merge"
resub=$(sbatch --parsable --array=2 --cpus-per-task=1 --export=ALL,COMMVQ_SHARDS=3 \
  "$root/scripts/slurm/grid-array.sbatch" "$tmp/grid.json" "$tmp/sharded")
merge2=$(sbatch --parsable --dependency=afterany:"$resub" "$root/scripts/slurm/merge.sbatch" "$tmp/sharded")
wait_jobs "$resub,$merge2"
if [ "$killed_at" -lt 4 ]; then
  echo "shard 2 cancelled after $killed_at of its 4 passkey samples, then resubmitted"
else
  echo "note: shard 2 had finished its passkey samples before the cancel (the resubmission had nothing to redo)"
fi

fail=0
for f in "$tmp/single/tables/"*.csv; do
  name=$(basename "$f")
  if ! diff -q "$f" "$tmp/sharded/tables/$name" > /dev/null; then
    echo "FAIL: tables/$name differs between the sharded Slurm run and the unsharded run:"
    diff "$f" "$tmp/sharded/tables/$name" || true
    fail=1
  fi
done
python3 - "$tmp/single/runs" "$tmp/sharded/runs" <<'PY' || fail=1
import glob, json, os, sys
a, b = sys.argv[1:]
def records(d):
    out = {}
    for f in glob.glob(os.path.join(d, "samples*.jsonl")):
        for line in open(f):
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            for k in ("timing", "prefill", "prefill_group"):
                r.pop(k, None)
            if r["id"] in out and out[r["id"]] != r:
                print(f"FAIL: {d}: sample {r['id']} written twice with different content"); sys.exit(1)
            out[r["id"]] = r
    return out
for task in sorted(os.listdir(a)):
    for m in sorted(os.listdir(os.path.join(a, task))):
        ra, rb = records(os.path.join(a, task, m)), records(os.path.join(b, task, m))
        if ra != rb:
            print(f"FAIL: {task}/{m}: {len(rb)} sharded records vs {len(ra)} unsharded, or different content"); sys.exit(1)
        print(f"{task}/{m}: {len(ra)} records, identical")
PY
echo "slurm test: $(( $(date +%s) - start )) s"
[ -s "$tmp/sharded/tables/main.csv" ] || { echo "FAIL: the merge job wrote no tables"; cat "$tmp"/slurm-*.out; fail=1; }
exit $fail
