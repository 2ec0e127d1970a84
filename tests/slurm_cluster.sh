#!/usr/bin/env bash
# A real single-node Slurm cluster on 127.0.0.1 for the workflow's Slurm test (needs root, Debian's
# slurm-wlm 22.05 and munge: `apt-get install slurm-wlm munge`, which .ci/run does).
#
#   tests/slurm_cluster.sh start   write /etc/slurm/slurm.conf + gres.conf, start munged, slurmctld
#                                  and slurmd, wait until `sinfo` shows the node idle
#   tests/slurm_cluster.sh stop    stop the three daemons by the PIDs recorded at start
#   tests/slurm_cluster.sh status  sinfo + squeue
#
# Settings a bare container needs (found by trial, see issue 6):
#   proctrack/linuxproc (no cgroup freezer), task/none, select/cons_tres (jobs side by side),
#   daemons on loopback only (NodeAddr=127.0.0.1 + NoCtldInAddrAny,NoInAddrAny), no slurmdbd
#   (accounting_storage/none: the Slurm profile must then query job states with squeue, and
#   MinJobAge must be >= 3 x slurm-init-seconds-before-status-checks or the plugin falls back to
#   sacct and waits forever), and one fake GPU (Gres=gpu:1 backed by File=/dev/null) so that a
#   rule's `resources: gpu=1` is submitted as a real GPU request (--gpus=1) instead of rejected.
set -euo pipefail

STATE=${DEEPSKY_SLURM_STATE:-/tmp/deepsky-slurm}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf

log() { echo "slurm_cluster: $*" >&2; }

start() {
  for exe in munged slurmctld slurmd sinfo sbatch; do
    command -v "$exe" >/dev/null || { log "$exe not found: apt-get install slurm-wlm munge"; exit 3; }
  done
  [ "$(id -u)" -eq 0 ] || { log "must run as root (daemons, /etc/slurm)"; exit 3; }
  if [ -f "$STATE/pids" ]; then
    log "a cluster started from $STATE is still recorded; stopping it first"
    stop
  fi
  mkdir -p "$STATE"/{ctld,d,munge,orig} "$CONF_DIR" /run/munge
  # keep any configuration the machine had, to put it back at `stop`
  for f in slurm.conf gres.conf; do
    if [ -f "$CONF_DIR/$f" ] && ! grep -q "deepsky tests/slurm_cluster.sh" "$CONF_DIR/$f"; then
      cp -p "$CONF_DIR/$f" "$STATE/orig/$f"
    fi
  done
  local cpus mem
  # at least 4 CPUs (SlurmdParameters=config_overrides lets a 2-core CI machine declare them) so
  # that the profile's 4-thread train job is accepted as shipped
  cpus=$(nproc); [ "$cpus" -ge 4 ] || cpus=4
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)

  # munge: the Debian package creates /etc/munge/munge.key; create one if it is missing
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge "$STATE/munge" 2>/dev/null || true
  chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key

  cat > "$CONF" <<EOF
# Written by deepsky tests/slurm_cluster.sh: a throw-away single-node cluster on loopback.
ClusterName=deepskytest
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
ReturnToService=2
MpiDefault=none
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  cat > "$CONF_DIR/gres.conf" <<EOF
# Written by deepsky tests/slurm_cluster.sh: one fake GPU so that GPU requests (--gpus=1) are
# accepted on a machine without one.
NodeName=localhost Name=gpu File=/dev/null
EOF

  local t0=$SECONDS
  # Each daemon runs in the foreground (-D / -F) as our child, so we know its PID for `stop`.
  munged -F --force --socket=/run/munge/munge.socket.2 --pid-file="$STATE/munge/munged.pid" \
    >"$STATE/munged.log" 2>&1 &
  echo "munged $!" > "$STATE/pids"
  for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
  slurmctld -D -i -f "$CONF" >"$STATE/slurmctld.out" 2>&1 &
  echo "slurmctld $!" >> "$STATE/pids"
  slurmd -D -f "$CONF" >"$STATE/slurmd.out" 2>&1 &
  echo "slurmd $!" >> "$STATE/pids"

  for _ in $(seq 120); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
      log "node idle after $((SECONDS - t0)) s (state in $STATE)"
      return 0
    fi
    sleep 0.5
  done
  log "node not idle after 60 s; daemon logs:"
  tail -n 20 "$STATE"/slurmctld.log "$STATE"/slurmd.log "$STATE"/*.out "$STATE/munged.log" >&2 || true
  sinfo -N -l >&2 || true
  stop
  exit 1
}

stop() {
  [ -f "$STATE/pids" ] || { log "nothing recorded in $STATE/pids"; restore_conf; return 0; }
  # reverse order: slurmd, slurmctld, munged
  tac "$STATE/pids" | while read -r name pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
      log "stopped $name ($pid)"
    fi
  done
  rm -f "$STATE/pids"
  restore_conf
}

# Put back the machine's own Slurm configuration, or remove ours: a slurm.conf naming a controller
# that is no longer running makes every `scontrol` call (and so every snakemake start, whose Slurm
# plugin asks `scontrol show config` when imported) wait ~9 s for it.
restore_conf() {
  for f in slurm.conf gres.conf; do
    if [ -f "$STATE/orig/$f" ]; then
      mv -f "$STATE/orig/$f" "$CONF_DIR/$f"
    elif [ -f "$CONF_DIR/$f" ] && grep -q "deepsky tests/slurm_cluster.sh" "$CONF_DIR/$f"; then
      rm -f "$CONF_DIR/$f"
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo -N -l; squeue ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
