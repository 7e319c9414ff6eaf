#!/usr/bin/env bash
# A one-node Slurm cluster with fake GPUs, for the Slurm end-to-end test (tests/pipeline/test_slurm.py).
# Debian 12 (Slurm 22.05), run as root, works without systemd (daemons are started by hand).
#
#   tests/pipeline/slurm/cluster.sh up       install (apt) and start munge, slurmctld, slurmd; idempotent:
#                                   a second `up` with the same settings is a no-op (~1 s)
#   tests/pipeline/slurm/cluster.sh down     stop what `up` started (by pid file) and wipe the state dir
#   tests/pipeline/slurm/cluster.sh status   sinfo, and whether a fake-GPU job gets CUDA_VISIBLE_DEVICES
#
# Settings (environment):
#   FAKE_GPUS=2    GPUs advertised as GRES gpu:fake:N, backed by /dev/null-like char devices:
#                  --gpus jobs schedule, get CUDA_VISIBLE_DEVICES and GPU counts are enforced;
#                  torch still sees no CUDA (0 = no GRES)
#   WITH_DBD=0     1 = also slurmdbd + MariaDB, so `sacct` works; 0 (default) = no accounting,
#                  Snakemake must then use `slurm-status-command: squeue` (profiles/slurm/ci.yaml)
#   SLURM_BASE=/tmp/vitprobe-slurm   state, logs, pid files and fake GPU devices
#   MIN_JOB_AGE=3600   seconds finished jobs stay visible to `squeue --states=all`; the test
#                  checks job ids there (the executor plugin needs >= 120 in squeue mode)
# Config files go to /etc/slurm (Slurm's default, so clients need no SLURM_CONF).
# Adapted from the recipe proven on the project machines (/work/shared/slurm/RECIPE.md).
set -euo pipefail
B=${SLURM_BASE:-/tmp/vitprobe-slurm}
WITH_DBD=${WITH_DBD:-0}
FAKE_GPUS=${FAKE_GPUS:-2}
MIN_JOB_AGE=${MIN_JOB_AGE:-3600}

log() { echo "[cluster.sh] $*" >&2; }
# liveness from a pid file; zombies (daemons not yet reaped by PID 1) don't count
alive() { local p; p=$(cat "$1" 2>/dev/null) || return 1; ps -o stat= -p "$p" 2>/dev/null | grep -qv Z; }
dead() { ! alive "$1"; }
waitfor() { local n=$1; shift; for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done; "$@"; }
stop() {  # stop <pidfile>: TERM, wait up to 10 s, then KILL
  local pf=$1 p; alive "$pf" || return 0; p=$(cat "$pf"); kill "$p" 2>/dev/null
  for _ in $(seq 1 40); do alive "$pf" || return 0; sleep 0.25; done; kill -9 "$p" 2>/dev/null || true
}

gpu_check() {  # a fake-GPU job must see CUDA_VISIBLE_DEVICES
  local cvd
  cvd=$(srun -t 1 --gpus=1 sh -c 'echo "${CUDA_VISIBLE_DEVICES:-unset}"')
  [ "$cvd" != unset ] || { log "a --gpus=1 job did not get CUDA_VISIBLE_DEVICES"; return 1; }
  log "a --gpus=1 job got CUDA_VISIBLE_DEVICES=$cvd"
}

up() {
  [ "$(id -u)" = 0 ] || { log "run as root (installs packages, starts daemons)"; exit 1; }
  # ---- packages (skipped when installed) ----
  local pkgs="munge slurmctld slurmd slurm-client" missing
  [ "$WITH_DBD" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  missing=$(for p in $pkgs; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
  if [ -n "$missing" ]; then
    log "installing: $(echo $missing)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
  mkdir -p "$B"/{ctld,d,log,run}

  # ---- munge ----
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged --force
    waitfor 40 sh -c 'munge -n | unmunge'
    log "munged started"
  fi

  # ---- slurm.conf, gres.conf ----
  local ncpu mem acct gres_types="" gres_node="" changed=0 f i
  ncpu=$(nproc)
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p'); mem=$((mem > 2048 ? mem - 512 : mem))  # above slurmd -C drains the node
  if [ "$WITH_DBD" = 1 ]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux"
  else
    acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
  fi
  if [ "$FAKE_GPUS" -gt 0 ]; then
    gres_types="GresTypes=gpu"; gres_node="Gres=gpu:fake:$FAKE_GPUS"
    for i in $(seq 0 $((FAKE_GPUS - 1))); do  # char devices (a clone of /dev/null): plain files are rejected
      [ -c "$B/fakegpu$i" ] || { rm -f "$B/fakegpu$i"; mknod -m 666 "$B/fakegpu$i" c 1 3; }
    done
    echo "NodeName=localhost Name=gpu Type=fake File=$B/fakegpu[0-$((FAKE_GPUS - 1))]" > "$B/gres.conf.new"
  else
    : > "$B/gres.conf.new"
  fi
  cat > "$B/slurm.conf.new" <<EOF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$B/ctld
SlurmdSpoolDir=$B/d
SlurmctldPidFile=$B/run/slurmctld.pid
SlurmdPidFile=$B/run/slurmd.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd.log
$acct
JobCompType=jobcomp/none
MinJobAge=$MIN_JOB_AGE
KillWait=5
InactiveLimit=0
$gres_types
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem $gres_node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  mkdir -p /etc/slurm
  for f in slurm.conf gres.conf; do
    if ! cmp -s "$B/$f.new" "/etc/slurm/$f"; then mv "$B/$f.new" "/etc/slurm/$f"; changed=1; else rm -f "$B/$f.new"; fi
  done

  # ---- MariaDB + slurmdbd (WITH_DBD=1) ----
  if [ "$WITH_DBD" = 1 ]; then
    if ! mariadb-admin ping >/dev/null 2>&1; then
      install -d -o mysql -g mysql /run/mysqld
      setsid /usr/sbin/mariadbd --user=mysql --skip-networking --log-error="$B/log/mariadb.log" </dev/null >/dev/null 2>&1 &
      waitfor 80 mariadb-admin ping
      log "mariadbd started"
    fi
    cat > "$B/slurmdbd.conf.new" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
LogFile=$B/log/slurmdbd.log
PidFile=$B/run/slurmdbd.pid
EOF
    if ! cmp -s "$B/slurmdbd.conf.new" /etc/slurm/slurmdbd.conf; then
      install -m 600 "$B/slurmdbd.conf.new" /etc/slurm/slurmdbd.conf; changed=1
      stop "$B/run/slurmdbd.pid"
    fi
    rm -f "$B/slurmdbd.conf.new"
    if ! alive "$B/run/slurmdbd.pid"; then slurmdbd; log "slurmdbd started"; fi
    waitfor 80 sacctmgr -n show cluster
    sacctmgr -n show cluster format=cluster | grep -qw ci || sacctmgr -i add cluster ci >/dev/null
    sacctmgr -n show account ci format=account | grep -qw ci || sacctmgr -i add account ci Cluster=ci Description=ci Organization=ci >/dev/null
    sacctmgr -n show assoc user=root account=ci format=user | grep -qw root || sacctmgr -i add user root Account=ci DefaultAccount=ci >/dev/null
  fi

  # ---- slurmctld + slurmd (restarted when a config changed) ----
  if [ "$changed" = 1 ] || ! alive "$B/run/slurmctld.pid" || ! alive "$B/run/slurmd.pid"; then
    if alive "$B/run/slurmctld.pid" || alive "$B/run/slurmd.pid"; then
      log "restarting slurmctld/slurmd"
      scontrol shutdown >/dev/null 2>&1 || true
      stop "$B/run/slurmd.pid"; stop "$B/run/slurmctld.pid"
    fi
    slurmctld
    slurmd -N localhost   # NodeName=localhost, independent of $(hostname)
    log "slurmctld/slurmd started"
  fi
  waitfor 80 sh -c 'sinfo -h -n localhost -o %t | grep -Eq "^(idle|mix|alloc)$"' ||
    { scontrol update nodename=localhost state=resume; waitfor 40 sh -c 'sinfo -h -o %t | grep -Eq "^(idle|mix|alloc)$"'; }
  sinfo -o "%P %a %D %t %c %m %G" >&2
  srun -t 1 true
  [ "$FAKE_GPUS" -gt 0 ] && gpu_check
  log "ready"
}

down() {
  scancel --full --quiet -u "$(id -un)" 2>/dev/null || true
  stop "$B/run/slurmd.pid"; stop "$B/run/slurmctld.pid"; stop "$B/run/slurmdbd.pid"
  if [ -s /etc/slurm/slurmdbd.conf ] && mariadb-admin ping >/dev/null 2>&1; then
    mariadb -e "DROP DATABASE IF EXISTS slurm_acct_db" 2>/dev/null || true
    stop /run/mysqld/mysqld.pid
  fi
  stop /run/munge/munged.pid
  rm -rf "$B" /etc/slurm/slurm.conf /etc/slurm/gres.conf /etc/slurm/slurmdbd.conf
  log "down"
}

status() {
  sinfo -o "%P %a %D %t %c %m %G"
  [ "$FAKE_GPUS" -gt 0 ] && gpu_check
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status   (env: FAKE_GPUS=2 WITH_DBD=0 SLURM_BASE=/tmp/vitprobe-slurm)" >&2; exit 2 ;;
esac
