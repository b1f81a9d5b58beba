"""The environment lock (requirements/*.txt) and whether the installed distributions match it.

`requirements/test.txt` pins the package with its `test` extra, `requirements/slurm.txt` the same plus
the `slurm` extra (its shared pins are test.txt's, see requirements/refresh.sh). Installed versions
come from importlib.metadata, so nothing here imports torch or any other dependency: a run record can
call `lock_status()` before the first heavy import.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from suite.files import file_sha256

REPO = Path(__file__).resolve().parent.parent
LOCK_FILE = REPO / "requirements" / "test.txt"
# Pins of the optional extras' lock that test.txt lacks are compared only where they are installed.
EXTRA_LOCK_FILES = (REPO / "requirements" / "slurm.txt",)


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it (`Pillow` and `pillow`, `a_b` and `a-b` are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: str | Path, environment: dict | None = None) -> dict[str, str]:
    """{normalized name: pinned version} of the lines whose markers hold in `environment`.

    `environment` overrides marker variables (e.g. {"python_full_version": "3.12.0"}); default: this
    interpreter. Raises ValueError naming the file and line on a line that is not `name==version`.
    """
    path = Path(path)
    pins: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):  # comments, `# via` lines, pip options
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as err:
            raise ValueError(f"{path}:{number}: not a requirement: {line!r} ({err})") from None
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise ValueError(f"{path}:{number}: a lock line pins one version with '==': {line!r}")
        if requirement.marker is None or requirement.marker.evaluate(environment):
            pins[normalize(requirement.name)] = specifiers[0].version
    return pins


def installed_versions() -> dict[str, str]:
    """{normalized name: version} of every distribution on sys.path (the first one found wins, as import does)."""
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(normalize(name), dist.version)
    return versions


def _same(installed: str, pinned: str) -> bool:
    """Equal as versions (`2.15.0` and `2.15` are one), a local build tag (`+cu130`) counts as different."""
    try:
        return Version(installed) == Version(pinned)
    except InvalidVersion:
        return installed == pinned


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def lock_status(lock_file: str | Path | None = None) -> dict:
    """{"lock_file", "lock_sha256", "matches", "differences"} for this interpreter's distributions.

    Every pin of the lock (default requirements/test.txt) that applies here must be installed at that
    version; pins only the extras' locks hold are checked where installed. `differences` holds one
    line per mismatch, e.g. "torch: installed 2.14.1, lock 2.15.0". Without the lock file (an install
    that is not a checkout) `lock_file` and `lock_sha256` are None and `matches` is False.
    """
    path = Path(lock_file) if lock_file is not None else LOCK_FILE
    extras = () if lock_file is not None else EXTRA_LOCK_FILES
    if not path.is_file():
        return {
            "lock_file": None,
            "lock_sha256": None,
            "matches": False,
            "differences": [f"no lock file at {path} (not a checkout of the suite?)"],
        }
    pins = read_lock(path)
    differences: list[str] = []
    if not pins:
        differences.append(
            f"no pin of {_display(path)} applies to Python {platform.python_version()} on "
            f"{platform.system().lower()} {platform.machine()}"
        )
    installed = installed_versions()
    optional: dict[str, str] = {}
    for extra in extras:
        if extra.is_file():
            for name, version in read_lock(extra).items():
                if name not in pins and name in installed:
                    optional[name] = version
    for name, pinned in sorted({**pins, **optional}.items()):
        have = installed.get(name)
        if have is None:
            differences.append(f"{name}: not installed, lock {pinned}")
        elif not _same(have, pinned):
            differences.append(f"{name}: installed {have}, lock {pinned}")
    return {
        "lock_file": _display(path),
        "lock_sha256": file_sha256(path),
        "matches": not differences,
        "differences": differences,
    }
