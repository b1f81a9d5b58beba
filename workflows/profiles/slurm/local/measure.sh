#!/usr/bin/env bash
# results/slurm: the tests config through SLURM (local one-node cluster, the repository's profile plus
# the two site settings) and the same config run locally (`--cores 2`), one after the other on this
# machine, each in a fresh copy of the working tree. Writes to OUT (default results/slurm):
#   slurm-run.log  the SLURM run's snakemake output     sacct.txt  its jobs as sacct lists them
#   local-run.log  the local run's snakemake output     README.md  both wall times, versions, and
#                                                                  what else ran on the machine
# Run from the repository root, as root, with the environment of the `slurm` extra active:
#   bash workflows/profiles/slurm/local/measure.sh [OUT]
# These are timings: run it on a machine that is otherwise quiet; README.md records the load anyway.
set -euo pipefail
ROOT=$(git rev-parse --show-toplevel)
OUT=$(realpath -m "${1:-$ROOT/results/slurm}")
HERE=$(dirname "$(readlink -f "$0")")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/slurm-measure.XXXXXX")
export SLURM_LOCAL_STARTED="$WORK/started"
mkdir -p "$OUT"
say() { echo "[measure $(date +%T)] $*"; }

copy_tree() {  # copy_tree DEST: tracked and new files of the working tree, nothing ignored
  mkdir -p "$1"
  (cd "$ROOT" && git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
     [ -f "$f" ] && install -D -m "$(stat -c %a "$f")" "$f" "$1/$f"; done)
}
machine_state() {  # the load and every process above 1 % CPU (command lines of the suite's tools only)
  echo '```'
  uptime
  ps -eo pcpu=,etime=,comm=,args= --sort=-pcpu | awk '$1 >= 1 {
    line = sprintf("%5s%% %11s  ", $1, $2)
    if ($3 ~ /^(python|python3|snakemake|pytest|suite|slurm|mariadbd|munged|sbatch|srun)/) {
      args = ""; for (i = 4; i <= NF; i++) args = args " " $i
      print line substr(args, 2, 110)
    } else print line $3
  }'
  echo '```'
}
seconds() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$@"; }

copy_tree "$WORK/slurm"
copy_tree "$WORK/local"
mkdir "$WORK/profile"
python3 - "$ROOT/workflows/profiles/slurm/config.yaml" "$WORK/profile/config.yaml" <<'EOF'
import sys, yaml
settings = yaml.safe_load(open(sys.argv[1]))
settings["default-resources"].update({"slurm_account": "local", "slurm_partition": "debug"})
yaml.safe_dump(settings, open(sys.argv[2], "w"), sort_keys=False)
EOF

before=$(machine_state)
bash "$HERE/start.sh"
trap 'bash "$HERE/stop.sh"' EXIT

say "tests config under SLURM"
cd "$WORK/slurm"
t0=$(date +%s.%N)
snakemake --executor slurm --workflow-profile "$WORK/profile" --configfile workflows/config/tests.yaml \
  > "$OUT/slurm-run.log" 2>&1
t1=$(date +%s.%N)
jobs=$(grep -o 'has been submitted with SLURM jobid [0-9]*' "$OUT/slurm-run.log" | awk '{print $NF}' | paste -sd,)
sacct -X -P -j "$jobs" -o JobID,JobName,Comment%80,State,Elapsed,Start,End,AllocCPUS,ReqMem,ExitCode \
  > "$OUT/sacct.txt"
states=$(tail -n +2 "$OUT/sacct.txt" | cut -d'|' -f4 | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}')
sed -i "s|$WORK/slurm|<workdir>|g" "$OUT/slurm-run.log"
between=$(machine_state)

say "tests config locally"
cd "$WORK/local"
t2=$(date +%s.%N)
snakemake --cores 2 --configfile workflows/config/tests.yaml > "$OUT/local-run.log" 2>&1
t3=$(date +%s.%N)
sed -i "s|$WORK/local|<workdir>|g" "$OUT/local-run.log"
after=$(machine_state)

cat > "$OUT/README.md" <<EOF
# The tests config under SLURM and locally, same machine, same day

Made by \`bash workflows/profiles/slurm/local/measure.sh\` (commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- . ':(exclude)results' || echo ", with uncommitted changes"))
on $(date -u +%Y-%m-%d), $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)).

| run | command | wall time |
|---|---|---|
| SLURM | \`snakemake --executor slurm --workflow-profile <profile + account, partition> --configfile workflows/config/tests.yaml\` | $(seconds "$t0" "$t1") s |
| local | \`snakemake --cores 2 --configfile workflows/config/tests.yaml\` | $(seconds "$t2" "$t3") s |

SLURM jobs (sacct.txt): ${states%, }; the data step and the report are local rules and do not appear there.
Cluster: one node (workflows/profiles/slurm/local/start.sh), $(sinfo --version), snakemake
$(snakemake --version), snakemake-executor-plugin-slurm $(python3 -c 'import importlib.metadata as m; print(m.version("snakemake-executor-plugin-slurm"))' 2>/dev/null || echo '?').
The SLURM run pays for the scheduler: each job waits for its submission, the status polls (first
after 10 s, then backing off) and the job's own start-up of snakemake inside the allocation.

Machine load before the SLURM run:
$before

Machine load between the two runs:
$between

Machine load after the local run:
$after
EOF
say "wrote $OUT: SLURM $(seconds "$t0" "$t1") s, local $(seconds "$t2" "$t3") s"
