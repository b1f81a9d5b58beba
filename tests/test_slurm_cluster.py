"""The cluster path for real: the tests config through snakemake-executor-plugin-slurm on a local SLURM.

Opt-in (marker `slurm`, deselected by pyproject's addopts; CI runs `pytest -m slurm tests`). As root it
brings up a one-node SLURM cluster with accounting (workflows/profiles/slurm/local/start.sh installs
the Debian packages where missing), then, in a copy of this working tree:
1. runs the tests config with the repository's profile plus only the two site settings (account,
   partition): every submitted job COMPLETED in sacct, every declared output present;
2. runs it again: nothing to do, nothing submitted;
3. trains with a one-minute walltime: the job ends TIMEOUT in sacct, the next invocation resubmits it
   and it resumes from the checkpoint the stopped job wrote, then COMPLETES;
4. cancels a running job with scancel: the run stops with an error instead of polling forever (the
   profile's `slurm-status-command: squeue`).
Finally it stops only the daemons it started (their PIDs, recorded by start.sh). Every snakemake call
has its own timeout and the whole test a hard one. It skips, saying why, where it cannot run: not root,
no package access, or a port of the cluster (3306, 6817-6819) already in use.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "workflows" / "profiles" / "slurm"
LOCAL = PROFILE / "local"
PORTS = (3306, 6817, 6818, 6819)  # MariaDB, slurmctld, slurmd, slurmdbd
SITE = {"slurm_account": "local", "slurm_partition": "debug"}  # what only this cluster knows (start.sh)
TESTS_CONFIG = "workflows/config/tests.yaml"
RUN_TIMEOUT = 900  # seconds for one snakemake invocation of the tests config

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3000)]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def why_not_here() -> str | None:
    """Why the local cluster cannot start on this machine, or None (package access is found out by trying)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "the local SLURM cluster needs root on Linux (it installs Debian packages and starts daemons)"
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        return "the local SLURM cluster needs Debian's packages (no dpkg-query/apt-get here)"
    taken = [port for port in PORTS if _listening(port)]
    if taken:
        return (
            f"127.0.0.1 port(s) {', '.join(map(str, taken))} already in use: the local cluster needs "
            f"3306 (MariaDB) and 6817-6819 (SLURM) free"
        )
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Start the local cluster; afterwards stop exactly the daemons this fixture started."""
    reason = why_not_here()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "SLURM_LOCAL_STARTED": str(tmp_path_factory.mktemp("started"))}
    try:
        done = subprocess.run(["bash", str(LOCAL / "start.sh")], env=env, capture_output=True, text=True, timeout=1200)
        print(done.stdout, done.stderr, sep="\n")
        if done.returncode == 3:  # start.sh: packages could not be installed
            pytest.skip(f"no package access: {done.stderr.strip().splitlines()[-1]}")
        assert done.returncode == 0, f"start.sh failed:\n{done.stdout}\n{done.stderr}"
        yield env
    finally:
        stopped = subprocess.run(["bash", str(LOCAL / "stop.sh")], env=env, capture_output=True, text=True, timeout=600)
        print(stopped.stdout, stopped.stderr, sep="\n")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of this working tree (tracked and new files, nothing ignored), so the run writes nowhere here."""
    work = tmp_path_factory.mktemp("slurm-e2e") / "wf"
    listed = (
        subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard"], capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)
    return work


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    """The repository's profile with only the site settings filled in."""
    settings = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert not set(SITE) & set(settings["default-resources"]), (
        "the repository's profile must leave the site settings out"
    )
    settings["default-resources"].update(SITE)
    folder = tmp_path_factory.mktemp("site-profile")
    (folder / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return folder


def _env() -> dict:
    # Jobs inherit the submitting environment (sbatch --export=ALL): put this interpreter's scripts
    # (snakemake, suite) first on PATH.
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _snakemake(profile: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--executor", "slurm", "--workflow-profile", str(profile), *args]


class Run:
    """One snakemake invocation in its own session, its output in a file; killed with its group on timeout."""

    def __init__(self, command: list[str], cwd: Path, log: Path) -> None:
        self.log = log
        self.handle = log.open("w")
        self.process = subprocess.Popen(
            command, cwd=cwd, env=_env(), stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None after killing it (and the SLURM jobs of its run) at `timeout`."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            run = self.run_id()
            if run:
                subprocess.run(["scancel", "--name", run], check=False)
            return None
        finally:
            if self.process.returncode is not None:
                self.handle.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def run_id(self) -> str | None:
        match = re.search(r"^SLURM run ID: (\S+)", self.text(), re.M)
        return match.group(1) if match else None

    def job_ids(self) -> list[str]:
        return re.findall(r"has been submitted with SLURM jobid (\d+)", self.text())


def _sacct(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{job id: (job name, state)} from the accounting database."""
    since = (dt.datetime.now() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "-j", ",".join(job_ids), "-o", "JobID,JobName,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return {job: (name, state) for job, name, state in rows}


def _wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen within {timeout:.0f} s")


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("checkpoints/iter_*.pt"))


def _long_training(workdir: Path, name: str) -> tuple[str, Path]:
    """A config over the tests config: one model (RIB) trained long enough to be stopped while it runs."""
    config = workdir / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "train": {
                    "biases": ["rib"],
                    "overrides": {"schedule.iterations": 60, "run.checkpoint_every": 2, "run.val_every": 60},
                },
            }
        )
    )
    return str(config.name), workdir / "results" / name / "train" / "tiny-rib-x2"


def test_tests_config_under_slurm(cluster, workdir, profile):
    configs = ["--configfile", TESTS_CONFIG]

    # 1. The whole tests config, every job through SLURM.
    first = Run(_snakemake(profile, *configs), workdir, workdir / "slurm-run.log")
    code = first.wait(RUN_TIMEOUT)
    assert code == 0, f"snakemake under SLURM: exit {code}\n{first.text()[-6000:]}"
    jobs = first.job_ids()
    assert jobs, "no job went to SLURM"
    states = _sacct(jobs)
    assert sorted(states) == sorted(jobs)
    assert {job: state for job, (_, state) in states.items()} == {job: "COMPLETED" for job in jobs}
    assert {name for name, _ in states.values()} == {first.run_id()}  # the plugin names jobs by its run ID

    summary = subprocess.run(
        [sys.executable, "-m", "snakemake", "--summary", *configs],
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    outputs = [line.split("\t")[0] for line in summary.splitlines()[1:] if "\t" in line]
    assert outputs and all(not name.startswith("results/") or name.startswith("results/tests/") for name in outputs)
    assert [name for name in outputs if not (workdir / name).exists()] == []

    # 2. A second invocation has nothing to do.
    again = Run(_snakemake(profile, *configs), workdir, workdir / "slurm-rerun.log")
    assert again.wait(300) == 0, again.text()[-4000:]
    assert "Nothing to be done" in again.text() and again.job_ids() == []

    # 3. A training job stopped at its walltime is resubmitted and resumes from its checkpoint.
    config, run_dir = _long_training(workdir, "slurm-walltime")
    target = str(run_dir.relative_to(workdir) / "final.pt")
    stopped = Run(
        _snakemake(profile, *configs, config, "--set-resources", "train:runtime=1", "--", target),
        workdir,
        workdir / "slurm-walltime-1.log",
    )
    _wait_for(lambda: _checkpoints(run_dir), 600, "a checkpoint of the walltime training")
    (job,) = _wait_for(stopped.job_ids, 60, "the walltime training's SLURM job")
    # Freeze the training (SIGSTOP to its step) so that it cannot finish before its one-minute walltime
    # on a fast machine; SLURM still counts the time and ends the job at the limit.
    subprocess.run(["scancel", "--signal=STOP", job], check=True)
    code = stopped.wait(600)
    assert code not in (0, None), f"the walltime-limited run: exit {code}\n{stopped.text()[-4000:]}"
    assert _sacct([job])[job][1] == "TIMEOUT"
    assert not (run_dir / "final.pt").exists()
    written = {path.name for path in _checkpoints(run_dir)}

    resumed = Run(_snakemake(profile, *configs, config, "--", target), workdir, workdir / "slurm-walltime-2.log")
    code = resumed.wait(RUN_TIMEOUT)
    assert code == 0, f"the re-run after the walltime: exit {code}\n{resumed.text()[-4000:]}"
    (again_job,) = resumed.job_ids()
    assert _sacct([again_job])[again_job][1] == "COMPLETED"
    train_log = (workdir / "logs" / "slurm-walltime" / "train" / "tiny-rib-x2.log").read_text()
    match = re.search(r"resuming from (\S+) at iteration (\d+)", train_log)
    assert match, f"the re-run did not resume:\n{train_log[-3000:]}"
    assert Path(match.group(1)).name in written and int(match.group(2)) > 0
    assert (run_dir / "final.pt").is_file()

    # 4. A cancelled job ends the run with an error (plugin 2.8.0 with sacct would poll it forever).
    config, run_dir = _long_training(workdir, "slurm-cancel")
    target = str(run_dir.relative_to(workdir) / "final.pt")
    cancelled = Run(_snakemake(profile, *configs, config, "--", target), workdir, workdir / "slurm-cancel.log")
    _wait_for(lambda: _checkpoints(run_dir), 600, "a checkpoint of the training to cancel")
    (job,) = _wait_for(cancelled.job_ids, 60, "the SLURM job to cancel")
    subprocess.run(["scancel", job], check=True)
    code = cancelled.wait(400)
    assert code is not None, "snakemake kept polling a cancelled job for 400 s (profile: slurm-status-command)"
    assert code != 0
    assert _sacct([job])[job][1].startswith("CANCELLED")
