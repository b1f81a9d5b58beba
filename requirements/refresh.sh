#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml:   bash requirements/refresh.sh [--upgrade]
# Without --upgrade, uv keeps every pin already in the files and only adds, drops or moves what a
# changed pyproject.toml demands; --upgrade re-resolves everything to the newest allowed versions.
# Needs uv (tested: pip install uv==0.13.9). Resolved for Linux x86-64 and every Python that
# pyproject.toml's requires-python allows ([tool.uv] environments); slurm.txt takes test.txt's pins
# as constraints, so the two files never disagree on a package they share.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null || { echo "refresh.sh: uv not found (pip install uv==0.13.9)" >&2; exit 1; }
export UV_CUSTOM_COMPILE_COMMAND="bash requirements/refresh.sh"
uv pip compile --quiet --universal "$@" pyproject.toml --extra test -o requirements/test.txt
uv pip compile --quiet --universal "$@" pyproject.toml --extra test --extra slurm \
  -c requirements/test.txt -o requirements/slurm.txt
