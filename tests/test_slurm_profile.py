"""The SLURM profile and its one-command site check (no cluster needed: SLURM's clients are stubs here)."""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "workflows" / "profiles" / "slurm"
CHECK = PROFILE / "check_site.py"
TESTS_CONFIG = ["--configfile", "workflows/config/tests.yaml"]

# Stubs of the SLURM clients: this cluster has partition "debug" and account "local".
STUBS = {
    "sbatch": "exit 0",
    "squeue": "exit 0",
    "sacct": "exit 0",
    "sinfo": 'case " $* " in *" -p debug "*) echo debug ;; esac',
    "sacctmgr": 'case " $* " in *" account=local "*) echo local ;; esac',
    # The plugin runs `scontrol show config` when imported; with a client but no controller that waits ~9 s.
    "scontrol": "exit 1",
}


def _stub_bin(folder: Path, names=STUBS) -> Path:
    folder.mkdir()
    for name in names:
        path = folder / name
        path.write_text(f"#!/bin/sh\n{STUBS[name]}\n")
        path.chmod(0o755)
    return folder


def _profile(tmp_path: Path, **site) -> Path:
    settings = yaml.safe_load((PROFILE / "config.yaml").read_text())
    settings["default-resources"].update(site)
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    return folder


def _check(bin_dir: Path, *args: str, only_stubs: bool = False) -> tuple[int, list[str]]:
    # The stubs shadow any real SLURM clients; `only_stubs` hides every other program too.
    path = str(bin_dir) if only_stubs else f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path}
    done = subprocess.run(
        [sys.executable, str(CHECK), *args, *TESTS_CONFIG],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout.strip().splitlines()


def test_profile_polls_for_short_jobs_and_notices_cancelled_jobs():
    settings = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert settings["executor"] == "slurm"
    assert settings["slurm-init-seconds-before-status-checks"] <= 10
    assert settings["slurm-status-command"] == "squeue"
    assert settings["rerun-incomplete"] is True
    # The site settings stay commented out: a site fills them in, the check names them until then.
    assert not {"slurm_account", "slurm_partition"} & set(settings["default-resources"])


def test_profile_settings_are_options_of_the_pinned_plugin(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{_stub_bin(tmp_path / 'bin', names=('scontrol',))}{os.pathsep}{os.environ['PATH']}")
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake_executor_plugin_slurm import ExecutorSettings

    fields = set(ExecutorSettings.__dataclass_fields__)
    settings = yaml.safe_load((PROFILE / "config.yaml").read_text())
    plugin_keys = [key for key in settings if key.startswith("slurm-")]
    assert plugin_keys
    for key in plugin_keys:
        assert key.removeprefix("slurm-").replace("-", "_") in fields, key


def test_site_check_names_the_missing_settings(tmp_path):
    pytest.importorskip(
        "snakemake_executor_plugin_slurm", reason="the site check needs the slurm extra (pip install -e '.[slurm]')"
    )
    code, lines = _check(_stub_bin(tmp_path / "bin"))
    assert code == 1
    assert [line.split(":")[1].strip() for line in lines] == ["slurm_account", "slurm_partition"]
    assert all(line.startswith("MISSING: ") and str(PROFILE / "config.yaml") in line for line in lines)


def test_site_check_checks_the_settings_against_the_cluster(tmp_path):
    pytest.importorskip(
        "snakemake_executor_plugin_slurm", reason="the site check needs the slurm extra (pip install -e '.[slurm]')"
    )
    profile = _profile(tmp_path, slurm_account="other", slurm_partition="gpu-nope")
    code, lines = _check(_stub_bin(tmp_path / "bin"), "--profile", str(profile))
    assert code == 1
    assert lines == [
        f"MISSING: slurm_account: {getpass.getuser()} has no association with account 'other' (sacctmgr)",
        "MISSING: slurm_partition: default-resources names 'gpu-nope', which sinfo does not list",
    ]


def test_site_check_without_slurm_commands_says_where_to_run_it(tmp_path):
    pytest.importorskip(
        "snakemake_executor_plugin_slurm", reason="the site check needs the slurm extra (pip install -e '.[slurm]')"
    )
    profile = _profile(tmp_path, slurm_account="local", slurm_partition="debug")
    code, lines = _check(_stub_bin(tmp_path / "bin", names=("sbatch",)), "--profile", str(profile), only_stubs=True)
    assert code == 1
    assert lines == [
        "MISSING: SLURM commands not found: squeue, sacct, sinfo, sacctmgr (run this on the cluster's login node)"
    ]


def test_site_check_passes_with_the_site_settings_and_a_dry_run(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    profile = _profile(tmp_path, slurm_account="local", slurm_partition="debug")
    code, lines = _check(_stub_bin(tmp_path / "bin"), "--profile", str(profile))
    assert (code, lines) == (0, [f"OK: {profile} is ready for this site (dry run passed)"])


def _cluster_test_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("slurm_cluster_test", ROOT / "tests" / "test_slurm_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cluster_test_skips_without_root(monkeypatch):
    module = _cluster_test_module()
    monkeypatch.setattr(module.os, "geteuid", lambda: 1000)
    assert module.why_not_here().startswith("the local SLURM cluster needs root")


def test_cluster_test_skips_naming_a_port_in_use(monkeypatch):
    import socket

    module = _cluster_test_module()
    monkeypatch.setattr(module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(module.shutil, "which", lambda name: f"/usr/bin/{name}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setattr(module, "PORTS", (port,))
        assert module.why_not_here() == (
            f"127.0.0.1 port(s) {port} already in use: the local cluster needs "
            "3306 (MariaDB) and 6817-6819 (SLURM) free"
        )
    assert module.why_not_here() is None  # the port is free again


def test_profile_set_resources_name_rules_of_the_workflow():
    rules = set()
    for smk in (ROOT / "workflows" / "rules").glob("*.smk"):
        text = smk.read_text()
        rules |= set(re.findall(r"^rule (\w+):", text, re.M))
        rules |= set(re.findall(r"^use rule \w+ as (\w+) with:", text, re.M))
    settings = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert set(settings["set-resources"]) <= rules, set(settings["set-resources"]) - rules
