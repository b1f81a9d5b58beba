#!/usr/bin/env bash
# Stop what workflows/profiles/slurm/local/start.sh started: the daemons whose PIDs it wrote to
# $SLURM_LOCAL_STARTED (default /run/slurm-local/started), each only while that PID still runs the
# same program; never by name. Jobs are cancelled first, if this run started slurmctld. The
# configuration, the accounting database and the logs (/var/log/slurm-local) are kept.
set -uo pipefail

STARTED=${SLURM_LOCAL_STARTED:-/run/slurm-local/started}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
say() { echo "[local-slurm $(date +%T)] $*"; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
declare -A EXE=([slurmd]=/usr/sbin/slurmd [slurmctld]=/usr/sbin/slurmctld [slurmdbd]=/usr/sbin/slurmdbd
                [mariadbd]=/usr/sbin/mariadbd [munged]=/usr/sbin/munged)

ours() {  # ours NAME: print the recorded PID if it still runs NAME's program
  local pid
  pid=$(cat "$STARTED/$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "${EXE[$1]}")" ] && echo "$pid"
}

if ours slurmctld >/dev/null; then   # jobs first, while slurmctld answers, so no step outlives slurmd
  jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// }" ]; then
    say "cancelling jobs $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq $(( TIMEOUT * 2 ))); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
  fi
fi
for name in slurmd slurmctld slurmdbd mariadbd munged; do
  if ! pid=$(ours "$name"); then rm -f "$STARTED/$name"; continue; fi
  kill -TERM "$pid"
  for _ in $(seq $(( TIMEOUT * 2 ))); do [ -e "/proc/$pid" ] || break; sleep 0.5; done
  if [ -e "/proc/$pid" ]; then say "$name (PID $pid) still running after $TIMEOUT s: SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$STARTED/$name"
  say "$name stopped (PID $pid)"
done
