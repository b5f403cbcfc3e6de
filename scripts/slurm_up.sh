#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for `make test-cluster`: Debian's slurm-wlm and
# munge, a slurm.conf describing this host as `slurmd -C` sees it, and munged, slurmctld and
# slurmd running. No accounting database: job status comes from squeue, finished jobs stay in
# slurmctld's memory for MinJobAge seconds (scontrol show job) and in the job-completion log.
# Idempotent: a second run finds the node idle and changes nothing. Needs root (apt, daemons).
set -euo pipefail

conf_dir=/etc/slurm
state_dir=/var/lib/slurm
log_dir=/var/log/slurm
jobcomp_log=$log_dir/jobcomp.log

fail() { echo "slurm_up: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (installs slurm-wlm and munge, starts their daemons)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || fail "slurm-wlm and munge are missing and apt-get is not available"
    apt-get update -qq || fail "apt-get update failed: Debian's archive is needed for slurm-wlm and munge"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || fail "apt-get install slurm-wlm munge failed"
fi

host=$(hostname -s)
# `slurmd -C` prints this node's real CPUs, sockets, cores and memory as a NodeName line.
node_line=$(slurmd -C | grep '^NodeName=') || fail "slurmd -C could not describe this host"
mkdir -p "$conf_dir" "$state_dir/slurmctld" "$state_dir/slurmd" "$log_dir" /run/munge /var/lib/munge /var/log/munge

new_conf=$(cat <<EOF
# Written by scripts/slurm_up.sh: a one-node test cluster, no accounting database.
ClusterName=cg3d
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$state_dir/slurmctld
SlurmdSpoolDir=$state_dir/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$jobcomp_log
MinJobAge=3600
ReturnToService=2
$node_line State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)
conf_changed=0
if [ "$(cat "$conf_dir/slurm.conf" 2>/dev/null)" != "$new_conf" ]; then
    printf '%s\n' "$new_conf" > "$conf_dir/slurm.conf"
    conf_changed=1
fi

if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key

running() { pgrep -x "$1" >/dev/null; }

running munged || runuser -u munge -- munged || munged --force || fail "munged did not start (see /var/log/munge/munged.log)"
munge -n | unmunge >/dev/null || fail "munge cannot encode/decode credentials"

if [ "$conf_changed" = 1 ] && running slurmctld; then
    scontrol reconfigure || fail "scontrol reconfigure failed (see $log_dir/slurmctld.log)"
fi
running slurmctld || slurmctld || fail "slurmctld did not start (see $log_dir/slurmctld.log)"
running slurmd || slurmd || fail "slurmd did not start (see $log_dir/slurmd.log)"

for _ in $(seq 60); do
    state=$(sinfo --noheader --nodes "$host" --format %T 2>/dev/null | head -1 || true)
    case "$state" in
        idle|mixed|allocated) echo "slurm_up: node $host is $state"; exit 0 ;;
        down*|drain*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
fail "node $host did not become idle within 60 s (state: '${state:-unknown}'; see $log_dir/slurmctld.log and slurmd.log)"
