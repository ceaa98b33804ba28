#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine for yoloab's SLURM tests (tests/test_slurm.py) and CI (.ci/run).
#
# munged, slurmctld and slurmd on 127.0.0.1; select/cons_tres over 2 CPUs; no accounting daemon (sacct answers
# "accounting storage is disabled", which yoloab handles). Needs root and Debian's slurm-wlm and munge packages
# (`apt-get install slurm-wlm munge`). Idempotent: what already runs is left running, so a second call returns at
# once. Exit codes: 0 the cluster answers; 2 cannot start here (not root, SLURM not installed, a slurm.conf this
# script did not write); 1 started but did not come up (the daemons' logs under $STATE are printed).
set -euo pipefail

MARK="# written by yoloab tests/slurm/start_cluster.sh"
CONF=/etc/slurm/slurm.conf
STATE=/var/lib/yoloab-slurm
HOST=$(hostname -s)

say() { echo "start_cluster: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (munged, slurmctld and slurmd are system daemons)"; exit 2; }
for bin in munged slurmctld slurmd sbatch squeue; do
  command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || { say "$bin not found: apt-get install slurm-wlm munge"; exit 2; }
done
if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
  say "$CONF exists and was not written by this script: a real cluster's configuration is not touched"
  exit 2
fi

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
MEM=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
NEW=$(mktemp)
cat >"$NEW" <<EOF
$MARK
ClusterName=yoloab
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# no cgroups: containers rarely delegate them; processes are tracked through their parents
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# the configured CPUs and memory, whatever the machine reports
SlurmdParameters=config_overrides
# SIGTERM, then SIGKILL this many seconds later (time limit, scancel, preemption)
KillWait=10
# finished jobs stay visible to squeue --states=all this long
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=2 RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
if ! cmp -s "$NEW" "$CONF" 2>/dev/null; then
  mv "$NEW" "$CONF" && chmod 644 "$CONF"
  changed=1
else
  rm -f "$NEW"
  changed=0
fi

# munge: its own user, its own run directory
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged
fi

if [ "$changed" = 1 ] && alive "$STATE/slurmctld.pid"; then  # a daemon of an older configuration
  scontrol reconfigure >/dev/null 2>&1 || true
fi
alive "$STATE/slurmctld.pid" || /usr/sbin/slurmctld
alive "$STATE/slurmd.pid" || /usr/sbin/slurmd

for _ in $(seq 1 60); do
  state=$(sinfo --noheader --format=%T 2>/dev/null | head -n1 || true)
  case "$state" in
    idle* | mixed* | allocated*) say "up: node $HOST $state"; exit 0 ;;
    down* | drain*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.5
done
say "the node did not come up (state: '${state:-none}'); logs follow"
tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
exit 1
