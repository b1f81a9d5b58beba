#!/usr/bin/env bash
# A one-node SLURM cluster with accounting on loopback, for trying the profile and for
# tests/test_slurm_cluster.py (Debian 12 or later, as root): munged, MariaDB (127.0.0.1:3306),
# slurmdbd (6819), slurmctld (6817), slurmd (6818, node "localnode"), partition "debug", account
# "local" with root as its user. Installs the Debian packages where missing. Leaves a daemon that is
# already running alone; writes the PID of each daemon it starts to $SLURM_LOCAL_STARTED/<name>, so
# that stop.sh stops exactly those (never by name). Waits until the node is idle.
#
# Environment: SLURM_LOCAL_STARTED (default /run/slurm-local/started), SLURM_LOCAL_CPUS (nproc),
# SLURM_LOCAL_MEM_MB (memory less 4 GiB), SLURM_LOCAL_TIMEOUT (seconds per daemon, 60).
# Exit 3: the Debian packages could not be installed (no package access).
set -euo pipefail

ACCOUNT=local PARTITION=debug CLUSTER=localcluster NODE=localnode
CPUS=${SLURM_LOCAL_CPUS:-$(nproc)}
MEM_MB=${SLURM_LOCAL_MEM_MB:-$(( $(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo) - 4096 ))}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
RUN=/run/slurm-local                       # the daemons' own PID files
STARTED=${SLURM_LOCAL_STARTED:-$RUN/started}
STATE=/var/lib/slurm-local
LOG=/var/log/slurm-local
MARK="# written by workflows/profiles/slurm/local/start.sh"
DB_PASS=slurmlocal                         # the database listens on 127.0.0.1 only
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)

say() { echo "[local-slurm $(date +%T)] $*"; }
die() { echo "[local-slurm] ERROR: $*" >&2; exit "${2:-1}"; }
[ "$(id -u)" = 0 ] || die "run as root"

# --- packages ----------------------------------------------------------------------------------
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  # The packages' maintainer scripts must not start daemons: this script starts and records them.
  policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  ok=1 aptlog=$(mktemp)
  apt-get update -q >"$aptlog" 2>&1 || ok=0
  [ "$ok" = 1 ] && { apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$aptlog" 2>&1 || ok=0; }
  [ "$policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$ok" = 1 ] || die "cannot install ${missing[*]}: $(grep -E '^(E|Err):' "$aptlog" | head -1)" 3
  rm -f "$aptlog"
fi

# --- configuration -----------------------------------------------------------------------------
mkdir -p "$RUN" "$STARTED" "$STATE/slurmctld" "$STATE/slurmd" "$LOG" /etc/slurm
install -d -o mysql -g mysql "$LOG/mariadb" /run/mysqld
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
for f in slurm.conf slurmdbd.conf; do      # keep a configuration someone else wrote
  if [ -f "/etc/slurm/$f" ] && ! grep -qF "$MARK" "/etc/slurm/$f"; then
    mv "/etc/slurm/$f" "/etc/slurm/$f.before-local-slurm"
  fi
done
cat > /etc/slurm/slurm.conf <<CONF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
# Process tracking without cgroups, so that it runs in containers whatever their cgroup setup.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
ReturnToService=2
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# Accounting through slurmdbd: sacct answers, as on a real cluster.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
# Keep sbatch --comment (the plugin's rule_<rule>_wildcards_<...>) in sacct.
AccountingStoreFlags=job_comment
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
# Finished jobs stay visible to squeue for 5 minutes (the profile polls squeue).
MinJobAge=300
KillWait=10
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
cat > /etc/slurm/slurmdbd.conf <<CONF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
chmod 644 /etc/slurm/slurm.conf && chmod 600 /etc/slurm/slurmdbd.conf

# --- daemons -----------------------------------------------------------------------------------
# runs PIDFILE EXE: the PID in PIDFILE is a live process of EXE (a stale or reused PID does not count;
# /usr/sbin/slurmd and slurmctld are links to *-wlm binaries, hence readlink -f).
runs() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$2")" ]
}
retry() {  # retry WHAT COMMAND...: every half second for $TIMEOUT seconds
  local what=$1; shift
  for _ in $(seq $(( TIMEOUT * 2 ))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "$what not ready after $TIMEOUT s (logs in $LOG)"
}
start() {  # start NAME PIDFILE EXE COMMAND...: unless running; record the PID of what we started
  local name=$1 pidfile=$2 exe=$3; shift 3
  if runs "$pidfile" "$exe"; then say "$name already running (PID $(cat "$pidfile")), left alone"; return 0; fi
  rm -f "$pidfile"
  "$@"
  retry "$name" runs "$pidfile" "$exe"
  cat "$pidfile" > "$STARTED/$name"
  say "$name started (PID $(cat "$pidfile"))"
}
background() { setsid "$@" </dev/null >/dev/null 2>&1 & }   # for a daemon that does not fork itself

if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
start munged /run/munge/munged.pid /usr/sbin/munged \
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
retry munge sh -c 'munge -n | unmunge'

[ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
start mariadbd /run/mysqld/mysqld.pid /usr/sbin/mariadbd \
  background /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --port=3306 \
    --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
    --innodb-buffer-pool-size=128M --log-error="$LOG/mariadb/error.log"
retry MariaDB mariadb-admin --socket=/run/mysqld/mysqld.sock ping
mariadb --socket=/run/mysqld/mysqld.sock <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

start slurmdbd "$RUN/slurmdbd.pid" /usr/sbin/slurmdbd /usr/sbin/slurmdbd
retry slurmdbd sacctmgr -n list cluster
# sbatch needs an association: cluster, account, and root as a user of the account.
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" \
  || sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=local Organization=local >/dev/null
sacctmgr -n -P list assoc cluster="$CLUSTER" account="$ACCOUNT" user=root format=user | grep -qx root \
  || sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" Cluster="$CLUSTER" >/dev/null

start slurmctld "$RUN/slurmctld.pid" /usr/sbin/slurmctld /usr/sbin/slurmctld
start slurmd "$RUN/slurmd.pid" /usr/sbin/slurmd /usr/sbin/slurmd -N "$NODE"

state=unknown
for _ in $(seq $(( TIMEOUT * 2 ))); do
  state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
  case "$state" in
    idle|mixed|allocated) break ;;
    down*|drain*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.5
done
case "$state" in idle|mixed|allocated) ;; *) die "node $NODE is '$state', not idle (logs in $LOG)" ;; esac
say "cluster $CLUSTER up: partition $PARTITION, account $ACCOUNT, node $NODE ($CPUS CPUs, $MEM_MB MB)"
