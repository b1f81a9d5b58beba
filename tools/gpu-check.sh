#!/usr/bin/env bash
# The GPU check in one command (about 8 minutes on one H100/H200; needs only this repository and pip):
#   1. a venv (.venv-gpu, reused when present) with the locked packages (requirements/test.txt) and the suite;
#   2. flash-attn if a wheel installs within 2 minutes (optional: else SDPA's flash kernels serve RIB);
#   3. pytest -m gpu;
#   4. the GPU profile sweep of the paper's setting (suite/profiling/configs/gpu.yaml: base preset,
#      attention-bf16, RPB on SDPA and FlexAttention at windows 32/64, RIB and no bias on flash kernels
#      at 32/64/96, training step and inference) inside its time budget, into results/profiles/<gpu>/;
#      it prints the speedup and memory table with the kernel family of every row.
# Usage: tools/gpu-check.sh [--dry-run]      (--dry-run: print the plan and the sweep's points; run nothing)
# Environment: GPU_CHECK_VENV (default .venv-gpu), PYTHON (default python3), GPU_CHECK_OUT
# (default results/profiles/{gpu}). A sweep cut by its budget continues when the script is run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $arg (use --dry-run or --help)" >&2; exit 2 ;;
  esac
done
VENV="${GPU_CHECK_VENV:-.venv-gpu}"
PYTHON="${PYTHON:-python3}"
OUT="${GPU_CHECK_OUT:-results/profiles/{gpu\}}"
LOCK=requirements/test.txt
INSTALL_LIMIT=240 FLASH_LIMIT=120 PYTEST_LIMIT=150

plan() {
  cat <<PLAN
gpu-check plan (budget about 8 minutes):
  1. venv $VENV: pip install -r $LOCK, pip install --no-deps -e .      [limit ${INSTALL_LIMIT} s; reused venv: seconds]
  2. pip install --only-binary=:all: flash-attn (optional)              [limit ${FLASH_LIMIT} s]
  3. pytest -q -m gpu tests                                             [limit ${PYTEST_LIMIT} s]
  4. suite profile sweep --config gpu --out '$OUT' --resume            [the sweep's own budget, below]
PLAN
}

if [ "$DRY_RUN" = 1 ]; then
  plan
  # The sweep's points and budget, from the same file the run uses (no GPU needed to list them).
  exec "$PYTHON" -m suite profile sweep --config gpu --out "$OUT" --dry-run
fi

plan
start=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
timeout "$INSTALL_LIMIT" "$VENV/bin/python" -m pip install -q -r "$LOCK"
timeout "$INSTALL_LIMIT" "$VENV/bin/python" -m pip install -q --no-deps -e .
echo "[gpu-check] installed in $((SECONDS - start)) s"

if timeout "$FLASH_LIMIT" "$VENV/bin/python" -m pip install -q --only-binary=:all: flash-attn; then
  echo "[gpu-check] flash-attn installed: RIB and none use it"
else
  echo "[gpu-check] no flash-attn wheel for this torch/CUDA: RIB and none use SDPA's flash kernels"
fi
"$VENV/bin/python" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print('[gpu-check]', torch.__version__, torch.cuda.get_device_name(0))"

status=0
timeout "$PYTEST_LIMIT" "$VENV/bin/python" -m pytest -q -m gpu tests || status=$?
echo "[gpu-check] pytest -m gpu: exit $status after $((SECONDS - start)) s"

sweep_status=0
"$VENV/bin/suite" profile sweep --config gpu --out "$OUT" --resume || sweep_status=$?
echo "[gpu-check] sweep: exit $sweep_status (3: budget spent, run tools/gpu-check.sh again to finish) after $((SECONDS - start)) s"
[ "$status" = 0 ] || exit "$status"
exit "$sweep_status"
