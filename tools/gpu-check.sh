#!/usr/bin/env bash
# The GPU check in one command (about 10 minutes on one H100/H200; needs only this repository and pip):
#   1. a venv (.venv-gpu, reused when present) with the locked packages (requirements/test.txt) and the suite;
#   2. flash-attn if a wheel installs within a minute (optional: else SDPA's flash kernels serve RIB);
#   3. pytest -m gpu;
#   4. the GPU profile sweep of the paper's setting (suite/profiling/configs/gpu.yaml: base preset,
#      attention-bf16, RPB on SDPA and FlexAttention at windows 32/64, RIB, no bias, RoPE and FlashBias
#      on flash kernels at 32/64/96, training step and inference) inside its time budget, into
#      results/profiles/<gpu>/;
#      it prints the speedup and memory table with the kernel family of every row;
#   5. where the official code is beside the repository (../SST, or $SST_CHECKOUT: a git checkout of
#      dslisleedh/SST), the peer benchmark (tools/official/peer_bench.py, official bfloat16 attention against
#      the suite at attention-bf16, light and base x2, inference and training) into results/bench/peer/<gpu>/.
# Usage: tools/gpu-check.sh [--dry-run] [--no-venv]
#   --dry-run: print the plan and the sweep's points; run nothing.
#   --no-venv: use $PYTHON's environment as it is (a machine without network that already has the suite);
#              also the fallback when installing fails.
# Environment: GPU_CHECK_VENV (default .venv-gpu), PYTHON (default python3), GPU_CHECK_OUT
# (default results/profiles/{gpu}), SST_CHECKOUT (default ../SST). A sweep cut by its budget continues when the
# script is run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
NO_VENV=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --no-venv) NO_VENV=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $arg (use --dry-run, --no-venv or --help)" >&2; exit 2 ;;
  esac
done
VENV="${GPU_CHECK_VENV:-.venv-gpu}"
PYTHON="${PYTHON:-python3}"
OUT="${GPU_CHECK_OUT:-results/profiles/{gpu\}}"
LOCK=requirements/test.txt
SST="${SST_CHECKOUT:-../SST}"
INSTALL_LIMIT=180 FLASH_LIMIT=60 PYTEST_LIMIT=90 PEER_LIMIT=300

plan() {
  cat <<PLAN
gpu-check plan (about 10 minutes: limits below; with a reused venv the steps before the sweep take 1-2 minutes):
  1. venv $VENV: pip install -r $LOCK, pip install --no-deps -e .      [limit ${INSTALL_LIMIT} s; reused venv: seconds]
     (offline or --no-venv: $PYTHON's environment as it is)
  2. pip install --only-binary=:all: flash-attn (optional)              [limit ${FLASH_LIMIT} s]
  3. pytest -q -m gpu tests                                             [limit ${PYTEST_LIMIT} s]
  4. suite profile sweep --config gpu --out '$OUT' --resume            [the sweep's own budget, below]
  5. tools/official/peer_bench.py $SST --device cuda (if $SST is there)   [limit ${PEER_LIMIT} s]
PLAN
}

if [ "$DRY_RUN" = 1 ]; then
  plan
  # The sweep's points and budget, from the same file the run uses (no GPU needed to list them).
  exec "$PYTHON" -m suite profile sweep --config gpu --out "$OUT" --dry-run
fi

plan
start=$SECONDS
PY="$VENV/bin/python"
install() {
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  timeout "$INSTALL_LIMIT" "$VENV/bin/python" -m pip install -q -r "$LOCK" &&
    timeout "$INSTALL_LIMIT" "$VENV/bin/python" -m pip install -q --no-deps -e .
}
if [ "$NO_VENV" = 1 ]; then
  PY="$PYTHON"
elif ! install; then
  echo "[gpu-check] installing into $VENV failed (no network?); using $PYTHON's environment as it is" >&2
  PY="$PYTHON"
fi
"$PY" -c "import suite, torch" || { echo "[gpu-check] $PY cannot import the suite and torch" >&2; exit 2; }
echo "[gpu-check] environment ready in $((SECONDS - start)) s: $PY"
"$PY" -c "import torch, sys; torch.cuda.is_available() or sys.exit('[gpu-check] torch ' + torch.__version__ + ' sees no CUDA device: nothing to check'); print('[gpu-check]', torch.__version__, torch.cuda.get_device_name(0))"

if timeout "$FLASH_LIMIT" "$PY" -m pip install -q --only-binary=:all: flash-attn; then
  echo "[gpu-check] flash-attn installed: RIB and none use it"
else
  echo "[gpu-check] no flash-attn wheel for this torch/CUDA: RIB and none use SDPA's flash kernels"
fi

status=0
timeout "$PYTEST_LIMIT" "$PY" -m pytest -q -m gpu tests || status=$?
echo "[gpu-check] pytest -m gpu: exit $status after $((SECONDS - start)) s"

sweep_status=0
"$PY" -m suite profile sweep --config gpu --out "$OUT" --resume || sweep_status=$?
echo "[gpu-check] sweep: exit $sweep_status (3: budget spent, run tools/gpu-check.sh again to finish) after $((SECONDS - start)) s"

peer_status=0
if [ -f "$SST/sst/archs/sst_arch.py" ]; then
  gpu=$("$PY" -c "import torch, re; print(re.sub(r'\W+', '-', torch.cuda.get_device_name(0)).strip('-').lower())")
  timeout "$PEER_LIMIT" "$PY" tools/official/peer_bench.py "$SST" --device cuda --out "results/bench/peer/$gpu" ||
    peer_status=$?
  echo "[gpu-check] peer benchmark against the official code: exit $peer_status after $((SECONDS - start)) s"
else
  echo "[gpu-check] no official code at $SST (set SST_CHECKOUT): peer benchmark skipped"
fi
[ "$status" = 0 ] || exit "$status"
[ "$sweep_status" = 0 ] || exit "$sweep_status"
exit "$peer_status"
