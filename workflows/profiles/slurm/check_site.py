"""Check a site for the SLURM profile in one command, before anything is submitted.

    python workflows/profiles/slurm/check_site.py [--profile DIR] [SNAKEMAKE ARGS...]

Names every required setting the profile still lacks (slurm_account, slurm_partition), checks the
ones it has against the cluster (sacctmgr: your association with the account; sinfo: the partitions
exist), then dry-runs the workflow through the SLURM executor with that profile (SNAKEMAKE ARGS
default to `--configfile workflows/config/paper.yaml`). Exit 0: ready to submit; 1: each problem is
named on its own line.
"""

from __future__ import annotations

import argparse
import getpass
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REQUIRED = {
    "slurm_account": "sbatch -A; `sacctmgr show assoc user=$USER` lists yours",
    "slurm_partition": "sbatch -p; `sinfo -s` lists the partitions",
}
CLIENTS = ("sbatch", "squeue", "sacct", "sinfo", "sacctmgr")


def _run(*command: str) -> str | None:
    """Stdout of a SLURM client command, or None where it failed."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _partitions(settings: dict) -> list[tuple[str, str]]:
    """(where, partition) of every partition the profile names, the default one first."""
    found = []
    default = (settings.get("default-resources") or {}).get("slurm_partition")
    if default:
        found.append(("default-resources", str(default)))
    for rule, resources in (settings.get("set-resources") or {}).items():
        if resources and resources.get("slurm_partition"):
            found.append((f"set-resources.{rule}", str(resources["slurm_partition"])))
    return found


def check(profile: Path, snakemake_args: list[str]) -> list[str]:
    problems: list[str] = []
    config = profile / "config.yaml"
    settings = yaml.safe_load(config.read_text()) or {}
    defaults = settings.get("default-resources") or {}
    for key, hint in REQUIRED.items():
        value = defaults.get(key)
        if value in (None, "") or "<" in str(value):
            problems.append(f"{key}: not set in {config} (default-resources; {hint})")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        problems.append(
            "snakemake-executor-plugin-slurm: not installed (pip install -e '.[test,slurm]' -c requirements/slurm.txt)"
        )
    absent = [name for name in CLIENTS if shutil.which(name) is None]
    if absent:
        problems.append(f"SLURM commands not found: {', '.join(absent)} (run this on the cluster's login node)")
        return problems
    account = defaults.get("slurm_account")
    if account and "<" not in str(account):
        user = getpass.getuser()
        listed = _run("sacctmgr", "-n", "-P", "show", "assoc", f"user={user}", f"account={account}", "format=account")
        if listed is not None and not listed.strip():
            problems.append(f"slurm_account: {user} has no association with account {account!r} (sacctmgr)")
    for where, partition in _partitions(settings):
        if "<" in partition:
            continue
        listed = _run("sinfo", "-h", "-p", partition, "-o", "%P")
        if listed is not None and not listed.strip():
            problems.append(f"slurm_partition: {where} names {partition!r}, which sinfo does not list")
    if not problems:
        dry = subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "--executor",
                "slurm",
                "--workflow-profile",
                str(profile),
                "--dry-run",
                "--quiet",
                "rules",
                *snakemake_args,
            ],
            capture_output=True,
            text=True,
        )
        if dry.returncode != 0:
            tail = (dry.stderr or dry.stdout).strip().splitlines()[-5:]
            problems.append("dry run failed: " + " | ".join(tail))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, default=HERE, help=f"profile folder (default {HERE})")
    args, snakemake_args = parser.parse_known_args(argv)
    problems = check(args.profile, snakemake_args or ["--configfile", "workflows/config/paper.yaml"])
    for problem in problems:
        print(f"MISSING: {problem}")
    if not problems:
        print(f"OK: {args.profile} is ready for this site (dry run passed)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
