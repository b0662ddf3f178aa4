#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, with real accounting (slurmdbd + a private MariaDB),
# so that `sacct`, which submitit polls, reports finished, failed and cancelled jobs.
#
# Usage: scripts/slurm_local.sh up | down [--purge] | status | env
#   up      install missing Debian packages (root), start munged, mariadbd, slurmdbd, slurmctld,
#           slurmd; idempotent. Prints the environment to use on stdout (eval "$(... up)"), logs on stderr.
#   down    cancel the cluster's jobs, stop the daemons this script started (by pid file); --purge
#           also removes the state folder.
#   status  one line per daemon; exit 0 when all run and the node takes jobs.
#   env     print the environment lines (export SLURM_CONF=...).
#
# Everything (configs, pid files, logs, spool, database) lives in the state folder; nothing is written
# to /etc or the system munge/mariadb, and no system service is started or stopped.
# Settings (environment):
#   NOISE_EXP_SLURM_DIR        state folder              (default /tmp/noise-exp-slurm)
#   NOISE_EXP_SLURM_PORT_BASE  slurmctld port; slurmd, slurmdbd, mariadb use the next three (default 16817)
#   NOISE_EXP_SLURM_PARTITION  partition name            (default local)
#   NOISE_EXP_SLURM_WAIT_S     bound of each wait        (default 120)
set -euo pipefail

STATE=$(realpath -m "${NOISE_EXP_SLURM_DIR:-/tmp/noise-exp-slurm}")
PORT_BASE=${NOISE_EXP_SLURM_PORT_BASE:-16817}
PARTITION=${NOISE_EXP_SLURM_PARTITION:-local}
WAIT_S=${NOISE_EXP_SLURM_WAIT_S:-120}
CTLD_PORT=$PORT_BASE
SLURMD_PORT=$((PORT_BASE + 1))
DBD_PORT=$((PORT_BASE + 2))
DB_PORT=$((PORT_BASE + 3))
CLUSTER=noiseexp
ACCOUNT=noiseexp
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server mariadb-client)
ME=$(id -un)
NODE=$(hostname -s)
MUNGE_SOCK=$STATE/munge/munge.socket
DB_SOCK=$STATE/db/mysqld.sock
export SLURM_CONF=$STATE/etc/slurm.conf

T0=$(date +%s)
log() { printf '[slurm_local %3ds] %s\n' $(( $(date +%s) - T0 )) "$*" >&2; }
die() { printf '[slurm_local] ERROR: %s\n' "$*" >&2; exit 1; }

# alive PIDFILE COMM: the pid in PIDFILE is a running process named COMM (a stale pid file or a
# recycled pid of another program does not count).
alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# wait_for DESCRIPTION LOGFILE COMMAND...: poll COMMAND until it succeeds, at most WAIT_S seconds;
# on timeout fail with the tail of LOGFILE, never wait forever.
wait_for() {
  local what=$1 logfile=$2 deadline=$(( $(date +%s) + WAIT_S ))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      [ -f "$logfile" ] && { echo "--- last lines of $logfile:" >&2; tail -n 20 "$logfile" >&2; }
      die "timed out after ${WAIT_S}s waiting for $what"
    fi
    sleep 0.5
  done
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_port_free() {  # PORT DAEMON: before starting DAEMON, its port must not be taken by another program
  port_busy "$1" && die "port $1 (for $2) is already in use by another program; set NOISE_EXP_SLURM_PORT_BASE to a free range (4 ports)"
  return 0
}

# ---------------------------------------------------------------- packages
install_packages() {
  local missing=() p created_policy=0
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get on this machine"
  log "installing ${missing[*]}"
  # Package scripts would start system slurm/munge/mariadb services; this cluster runs its own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1
  fi
  local apt_opts=(-y -qq --no-install-recommends -o DPkg::Lock::Timeout="$WAIT_S")
  if ! DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}" </dev/null >"$STATE/log/apt.log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq -o DPkg::Lock::Timeout="$WAIT_S" </dev/null >>"$STATE/log/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}" </dev/null >>"$STATE/log/apt.log" 2>&1 \
      || { [ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d; tail -n 20 "$STATE/log/apt.log" >&2; die "apt-get install ${missing[*]} failed (log: $STATE/log/apt.log)"; }
  fi
  [ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  log "packages installed"
}

# ---------------------------------------------------------------- configuration
write_if_changed() {  # FILE MODE: stdin becomes FILE unless identical; returns 0 when it changed
  local tmp; tmp=$(mktemp "$1.XXXX")
  cat > "$tmp"; chmod "$2" "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  mv "$tmp" "$1"
}

write_configs() {
  local cpus boards sockets cores threads mem real_mem
  read -r cpus boards sockets cores threads mem < <(slurmd -C | head -n 1 | sed -E \
    's/.*CPUs=([0-9]+) Boards=([0-9]+) SocketsPerBoard=([0-9]+) CoresPerSocket=([0-9]+) ThreadsPerCore=([0-9]+) RealMemory=([0-9]+).*/\1 \2 \3 \4 \5 \6/')
  real_mem=$(( mem * 85 / 100 ))
  CONFIG_CHANGED=0
  # Accounting through slurmdbd is what makes a job killed hard visible as FAILED/CANCELLED to
  # sacct (submitit's only source of job state); without it submitit waits forever.
  write_if_changed "$STATE/etc/slurm.conf" 644 <<EOF && CONFIG_CHANGED=1 || true
# written by scripts/slurm_local.sh
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$ME
SlurmdUser=$ME
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# for slurmdbd connections the munge socket is taken from here, not from AuthInfo
AccountingStoragePass=$MUNGE_SOCK
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$real_mem State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  write_if_changed "$STATE/etc/slurmdbd.conf" 600 <<EOF || true
# written by scripts/slurm_local.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=$ME
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurm-local
EOF
  write_if_changed "$STATE/env.sh" 644 <<EOF || true
export SLURM_CONF=$STATE/etc/slurm.conf
EOF
  NODE_DESC="node $NODE CPUs=$cpus RealMemory=${real_mem}MB"
}

# ---------------------------------------------------------------- daemons
start_munged() {
  alive "$STATE/run/munged.pid" munged && return 0
  if [ ! -s "$STATE/munge/key/munge.key" ]; then
    mkdir -p "$STATE/munge/key"; chmod 700 "$STATE/munge/key"
    mungekey --create --keyfile="$STATE/munge/key/munge.key" >/dev/null
  fi
  rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
  local force=(); [ "$(id -u)" = 0 ] && force=(--force)
  munged "${force[@]}" --socket="$MUNGE_SOCK" --key-file="$STATE/munge/key/munge.key" \
    --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/munge/munged.seed" </dev/null >>"$STATE/log/munged.log" 2>&1 \
    || die "munged failed to start (log: $STATE/log/munged.log)"
  wait_for "munged" "$STATE/log/munged.log" sh -c "munge -S '$MUNGE_SOCK' -n | unmunge -S '$MUNGE_SOCK'"
  log "munged started (pid $(cat "$STATE/run/munged.pid"))"
}

db() { mariadb --socket="$DB_SOCK" -u"$ME" "$@"; }

start_mariadb() {
  alive "$STATE/db/mysqld.pid" mariadbd && return 0
  check_port_free "$DB_PORT" mariadbd
  if [ ! -d "$STATE/db/data/mysql" ]; then
    rm -rf "$STATE/db/data"
    mariadb-install-db --no-defaults --user="$ME" --datadir="$STATE/db/data" --auth-root-authentication-method=socket \
      --skip-test-db </dev/null >"$STATE/log/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed (log: $STATE/log/mariadb-install.log)"
  fi
  rm -f "$DB_SOCK"
  # setsid + closed stdio: the server must not hold the caller's pipes open (a pytest fixture
  # reading this script's output would otherwise wait for it).
  setsid mariadbd --no-defaults --user="$ME" --datadir="$STATE/db/data" --socket="$DB_SOCK" \
    --pid-file="$STATE/db/mysqld.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --log-error="$STATE/log/mariadb.log" --skip-name-resolve --skip-log-bin --performance-schema=OFF \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
    --max-connections=50 </dev/null >/dev/null 2>&1 &
  wait_for "mariadbd on $DB_SOCK" "$STATE/log/mariadb.log" db -e "SELECT 1"
  db -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-local';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-local';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  log "mariadbd started (pid $(cat "$STATE/db/mysqld.pid"), port $DB_PORT)"
}

start_slurmdbd() {
  if ! alive "$STATE/run/slurmdbd.pid" slurmdbd; then
    check_port_free "$DBD_PORT" slurmdbd
    slurmdbd </dev/null >>"$STATE/log/slurmdbd.log" 2>&1 || die "slurmdbd failed to start (log: $STATE/log/slurmdbd.log)"
    log "slurmdbd started"
  fi
  # The first start creates the accounting tables; sacctmgr answers once that is done.
  wait_for "slurmdbd to answer sacctmgr" "$STATE/log/slurmdbd.log" sacctmgr -n show cluster
  # Register the cluster and an association for this user before slurmctld connects, so every job
  # lands in the accounting database from its first second.
  sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
  sacctmgr -n -P show account format=account | grep -qx "$ACCOUNT" || sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" >/dev/null
  sacctmgr -n -P show user format=user | grep -qx "$ME" || sacctmgr -i add user "$ME" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
}

start_slurmctld() {
  if alive "$STATE/run/slurmctld.pid" slurmctld; then
    if [ "$CONFIG_CHANGED" = 1 ]; then scontrol reconfigure && log "slurmctld reconfigured"; fi
    return 0
  fi
  check_port_free "$CTLD_PORT" slurmctld
  slurmctld -f "$SLURM_CONF" </dev/null >>"$STATE/log/slurmctld.log" 2>&1 || die "slurmctld failed to start (log: $STATE/log/slurmctld.log)"
  wait_for "slurmctld to answer scontrol ping" "$STATE/log/slurmctld.log" sh -c 'scontrol ping | grep -q UP'
  log "slurmctld started (pid $(cat "$STATE/run/slurmctld.pid"), port $CTLD_PORT)"
}

start_slurmd() {
  if ! alive "$STATE/run/slurmd.pid" slurmd; then
    check_port_free "$SLURMD_PORT" slurmd
    slurmd -f "$SLURM_CONF" -N "$NODE" </dev/null >>"$STATE/log/slurmd.log" 2>&1 || die "slurmd failed to start (log: $STATE/log/slurmd.log)"
    log "slurmd started"
  fi
  # A restarted node can come back DOWN/DRAINED ("unexpectedly rebooted"); resume it.
  local deadline=$(( $(date +%s) + WAIT_S )) st
  while :; do
    st=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1 || true)
    case $st in
      idle*|mixed*|allocated*|completing*) break ;;
      down*|drain*|fail*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 20 "$STATE/log/slurmd.log" >&2
      die "node $NODE is '${st:-unknown}' after ${WAIT_S}s, not idle (logs: $STATE/log/)"
    fi
    sleep 0.5
  done
}

print_env() { cat "$STATE/env.sh"; }

# ---------------------------------------------------------------- commands
cmd_up() {
  mkdir -p "$STATE"/{etc,log,run,spool/ctld,spool/d,munge,db}
  chmod 755 "$STATE" "$STATE/munge"
  install_packages
  write_configs
  start_munged
  start_mariadb
  start_slurmdbd
  start_slurmctld
  start_slurmd
  wait_for "sacct to answer" "$STATE/log/slurmdbd.log" sacct -n -X -S now-1hour
  log "cluster '$CLUSTER' up: $NODE_DESC, partition '$PARTITION', state in $STATE"
  log "use it with:  source $STATE/env.sh   (or: eval \"\$($0 env)\")"
  print_env
}

# stop_pid PIDFILE COMM: stop our daemon (TERM, then KILL after 10 s) and remove its pid file.
stop_pid() {
  local f=$1 comm=$2 pid
  if alive "$f" "$comm"; then
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; log "killed $comm ($pid)"; else log "stopped $comm ($pid)"; fi
  fi
  rm -f "$f"
}

cmd_down() {
  [ -d "$STATE" ] || { log "nothing to stop ($STATE does not exist)"; return 0; }
  if [ -f "$SLURM_CONF" ] && alive "$STATE/run/slurmctld.pid" slurmctld; then
    local jobs; jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      log "cancelled jobs: $jobs"
      for _ in $(seq 60); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
    fi
  fi
  stop_pid "$STATE/run/slurmd.pid" slurmd
  stop_pid "$STATE/run/slurmctld.pid" slurmctld
  stop_pid "$STATE/run/slurmdbd.pid" slurmdbd
  stop_pid "$STATE/db/mysqld.pid" mariadbd
  stop_pid "$STATE/run/munged.pid" munged
  # Job steps of this cluster that outlived slurmd (their environment names this cluster's config).
  local p
  for p in $(pgrep -x slurmstepd || true); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF"; then
      kill -9 "$p" 2>/dev/null && log "killed leftover slurmstepd ($p)"
    fi
  done
  if [ "${1:-}" = "--purge" ]; then rm -rf "$STATE"; log "removed $STATE"; fi
  log "down"
}

cmd_status() {
  local ok=0 pair f comm
  for pair in "run/munged.pid munged" "db/mysqld.pid mariadbd" "run/slurmdbd.pid slurmdbd" \
              "run/slurmctld.pid slurmctld" "run/slurmd.pid slurmd"; do
    f=$STATE/${pair% *}; comm=${pair#* }
    if alive "$f" "$comm"; then printf '%-10s running (pid %s)\n' "$comm" "$(cat "$f")"
    else printf '%-10s stopped\n' "$comm"; ok=1; fi
  done
  if [ $ok = 0 ]; then
    sinfo -h -o "partition=%P nodes=%D state=%T" 2>/dev/null || ok=1
    squeue -h -o "job %i %j %T" 2>/dev/null || true
  fi
  return $ok
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down "${2:-}" ;;
  status) cmd_status ;;
  env) [ -f "$STATE/env.sh" ] || die "no cluster state in $STATE (run: $0 up)"; print_env ;;
  *) echo "usage: $0 up | down [--purge] | status | env" >&2; exit 2 ;;
esac
