#!/usr/bin/env bash
# A one-node Slurm on this machine, for trying the array scripts and for the test suite:
#   scripts/slurm/local-cluster.sh start DIR   -> munged, slurmctld and slurmd with state in DIR;
#                                                prints "export SLURM_CONF=DIR/slurm.conf"
#   scripts/slurm/local-cluster.sh stop DIR
# Needs Debian's slurmctld, slurmd, slurm-client and munge (scripts/setup.sh installs them) and
# root (the daemons run as root here). Ports 16817/16818 unless SLURM_TEST_PORT is set.
set -euo pipefail
cmd=${1:?usage: local-cluster.sh start|stop DIR}
dir=${2:?usage: local-cluster.sh start|stop DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stop() {
  local pids=""
  for p in slurmd slurmctld munge/munged; do
    [ -f "$dir/$p.pid" ] && pids="$pids $(cat "$dir/$p.pid")"
  done
  [ -n "$pids" ] && kill $pids 2> /dev/null || true
  for _ in $(seq 1 20); do
    alive=0
    for p in $pids; do kill -0 "$p" 2> /dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.5
  done
}
case "$cmd" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "local-cluster.sh: unknown command $cmd (start or stop)" >&2; exit 2 ;;
esac
for b in munged slurmctld slurmd sbatch; do
  command -v "$b" > /dev/null || { echo "local-cluster.sh: $b is not installed (apt-get install slurmctld slurmd slurm-client munge)" >&2; exit 1; }
done
host=$(hostname -s)
port=${SLURM_TEST_PORT:-16817}
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"
[ -f "$dir/munge.key" ] || { dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 2> /dev/null; chmod 600 "$dir/munge.key"; }
cat > "$dir/slurm.conf" <<CONF
ClusterName=commvq
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldPort=$port
SlurmdPort=$((port + 1))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
munged --force --key-file="$dir/munge.key" --socket="$dir/munge/munge.sock" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed"
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 1 30); do
  if sinfo -h -o %t 2> /dev/null | grep -q idle; then echo "export SLURM_CONF=$SLURM_CONF"; exit 0; fi
  sleep 1
done
echo "local-cluster.sh: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
stop
exit 1
