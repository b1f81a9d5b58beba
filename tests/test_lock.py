"""The environment lock: it covers pyproject.toml within its ranges, and lock_status() reports mismatches."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from suite import lock

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The Python versions requirements/README.md promises the lock for (pyproject's [tool.uv] environments).
SUPPORTED = ("3.11", "3.12", "3.13")
# Extras the lock holds: `flash` builds only against a local CUDA toolkit and stays outside it.
LOCKED_EXTRAS = {"test.txt": ("test",), "slurm.txt": ("test", "slurm")}


def _environment(python: str) -> dict:
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
    }


def _declared(extras) -> list[Requirement]:
    texts = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        texts += PYPROJECT["project"]["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


@pytest.mark.parametrize("python", SUPPORTED)
@pytest.mark.parametrize("lock_name", sorted(LOCKED_EXTRAS))
def test_lock_covers_every_dependency_within_its_range(lock_name, python):
    env = _environment(python)
    pins = lock.read_lock(ROOT / "requirements" / lock_name, environment=env)
    problems = []
    for requirement in _declared(LOCKED_EXTRAS[lock_name]):
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        pinned = pins.get(lock.normalize(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name}: not in the lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement.name}: lock {pinned} outside {requirement.specifier}")
    assert problems == [], f"requirements/{lock_name} for Python {python}: {problems}"


def test_supported_pythons_are_the_ones_pyproject_allows_and_the_lock_targets():
    from packaging.specifiers import SpecifierSet

    requires = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert all(requires.contains(f"{python}.0") for python in SUPPORTED)
    (environments,) = PYPROJECT["tool"]["uv"]["environments"]
    from packaging.markers import Marker

    marker = Marker(environments)
    assert all(marker.evaluate(_environment(python)) for python in SUPPORTED)
    assert not marker.evaluate(_environment("3.14"))
    assert not marker.evaluate({**_environment("3.11"), "platform_machine": "aarch64"})


def test_slurm_lock_agrees_with_test_lock_on_every_shared_pin():
    env = _environment("3.11")
    test_pins = lock.read_lock(ROOT / "requirements" / "test.txt", environment=env)
    slurm_pins = lock.read_lock(ROOT / "requirements" / "slurm.txt", environment=env)
    assert {name: slurm_pins[name] for name in test_pins} == test_pins
    assert "snakemake-executor-plugin-slurm" in set(slurm_pins) - set(test_pins)


def test_lock_headers_name_the_refresh_command():
    for name in LOCKED_EXTRAS:
        head = (ROOT / "requirements" / name).read_text().splitlines()[:3]
        assert "#    bash requirements/refresh.sh" in head, name


# --- lock_status ---------------------------------------------------------------------------------


def _write_lock(tmp_path, lines) -> Path:
    path = tmp_path / "lock.txt"
    path.write_text("# a lock\n" + "".join(line + "\n" for line in lines))
    return path


def _installed_pytest() -> str:
    import importlib.metadata

    return importlib.metadata.version("pytest")


def test_lock_status_matches_when_every_applicable_pin_is_installed(tmp_path):
    path = _write_lock(
        tmp_path,
        [
            f"PyTest=={_installed_pytest()}",
            "    # via rib-suite",
            "not-a-real-dist==1.0 ; sys_platform == 'nonexistent'",
        ],
    )
    status = lock.lock_status(path)
    assert status == {"lock_file": str(path), "lock_sha256": status["lock_sha256"], "matches": True, "differences": []}
    from suite.files import file_sha256

    assert status["lock_sha256"] == file_sha256(path)


def test_lock_status_lists_a_wrong_version_and_a_missing_distribution(tmp_path):
    path = _write_lock(tmp_path, ["pytest==0.0.1", "not-a-real-dist==1.0"])
    status = lock.lock_status(path)
    assert status["matches"] is False
    assert status["differences"] == [
        "not-a-real-dist: not installed, lock 1.0",
        f"pytest: installed {_installed_pytest()}, lock 0.0.1",
    ]


def test_lock_status_without_an_applicable_pin_says_so(tmp_path):
    path = _write_lock(tmp_path, ["pytest==1.0 ; sys_platform == 'nonexistent'"])
    status = lock.lock_status(path)
    assert status["matches"] is False
    assert len(status["differences"]) == 1
    assert status["differences"][0].startswith("no pin of ")


def test_lock_status_without_a_lock_file(tmp_path):
    status = lock.lock_status(tmp_path / "absent.txt")
    assert status["lock_file"] is None and status["lock_sha256"] is None and status["matches"] is False
    assert "absent.txt" in status["differences"][0]


@pytest.mark.parametrize("line", ["pytest>=1.0", "pytest", "pytest==1.0,!=2.0", "===="])
def test_read_lock_names_file_and_line_of_a_bad_pin(tmp_path, line):
    path = _write_lock(tmp_path, ["pytest==1.0", line])
    with pytest.raises(ValueError, match=r"lock\.txt:3: "):
        lock.read_lock(path)


def test_local_build_tag_is_a_difference():
    assert lock._same("2.15.0", "2.15")
    assert not lock._same("2.15.0+cu130", "2.15.0")


def test_lock_status_imports_no_torch():
    code = (
        "import sys, suite.lock; s = suite.lock.lock_status(); "
        "assert s['lock_file'] == 'requirements/test.txt', s; "
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_every_install_path_goes_through_the_lock():
    """The README's install, CI and the workflow's conda environment all install with the lock as constraints."""
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[test]' -c requirements/test.txt" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' -c requirements/test.txt" in ci
    assert "pip install -e '.[test,slurm]' -c requirements/slurm.txt" in ci
    deploy = (ROOT / "workflows" / "envs" / "suite.post-deploy.sh").read_text()
    assert "pip install --no-input -e . -c requirements/test.txt" in deploy
    conda_python = re.search(
        r"^\s*- python =(\d+\.\d+)$", (ROOT / "workflows" / "envs" / "suite.yaml").read_text(), re.M
    )
    assert conda_python and conda_python.group(1) in SUPPORTED
