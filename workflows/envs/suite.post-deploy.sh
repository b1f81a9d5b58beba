#!/usr/bin/env bash
# Runs once inside the new conda environment, from the working directory (the repository root):
# installs the suite and its dependencies from pyproject.toml.
set -euo pipefail
python -m pip install --no-input -e .
