#!/usr/bin/env bash
# Submits a grid as a Slurm job array of N shards plus the merge job that runs after it; prints
# both job ids ("ARRAY_ID MERGE_ID").
#   scripts/slurm/submit.sh CONFIG OUT N [CPUS_PER_SHARD]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
config=${1:?usage: submit.sh CONFIG OUT N [CPUS_PER_SHARD]}
out=${2:?usage: submit.sh CONFIG OUT N [CPUS_PER_SHARD]}
n=${3:?usage: submit.sh CONFIG OUT N [CPUS_PER_SHARD]}
cpus=${4:-1}
array=$(sbatch --parsable --array=0-$((n - 1)) --cpus-per-task="$cpus" "$here/grid-array.sbatch" "$config" "$out")
merge=$(sbatch --parsable --dependency=afterany:"$array" "$here/merge.sbatch" "$out")
echo "$array $merge"
