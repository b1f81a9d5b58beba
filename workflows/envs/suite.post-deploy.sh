#!/usr/bin/env bash
# Runs once inside the new conda environment, from the working directory (the repository root):
# installs the suite through the lock, so the conda environment has exactly the pins of a venv
# install (requirements/test.txt; `bash requirements/refresh.sh` refreshes it).
set -euo pipefail
python -m pip install --no-input -e . -c requirements/test.txt
