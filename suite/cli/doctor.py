"""`suite doctor`: what this machine will do, before any long run.

Prints Python, torch, CUDA, the devices, the attention backend `auto` resolves to for each bias,
device, dtype and phase (and why), whether flash-attn imports and FlexAttention compiles, pyiqa and
the metric protocol, whether the installed versions match the lock, threads and free disk. Exits 0
when everything the default workflow needs is in place, 1 naming what is missing otherwise; what
only changes speed or provenance (no FlexAttention, a lock mismatch) is a warning.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil
import sys
import warnings
from pathlib import Path

WIDTH = 16  # label column


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="what this machine will do: versions, devices, attention backends, lock, disk",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="the device the workflow will train and evaluate on (default cpu, as the default "
        "workflow's config); cuda or cuda:N must be usable for exit 0",
    )
    parser.add_argument("--data-root", type=Path, default=Path("data"), help="where datasets go (default ./data)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="where results go (default ./results)")
    parser.add_argument(
        "--min-free-gb",
        type=float,
        default=2.0,
        help="free disk the data and results folders need (default 2 GiB: the default "
        "workflow writes well under 1 GiB)",
    )
    parser.add_argument(
        "--skip-compile", action="store_true", help="do not compile FlexAttention (it takes up to a minute on a CPU)"
    )
    parser.set_defaults(func=run)


class Findings:
    """Printed lines plus what blocks the default workflow (`problems`) and what only warns."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.sections = 0

    def section(self, title: str) -> None:
        print(f"{chr(10) if self.sections else ''}[{title}]", file=self.out)
        self.sections += 1

    def line(self, label: str, text: str) -> None:
        print(f"{label:<{WIDTH}}{text}", file=self.out)

    def problem(self, label: str, text: str) -> None:
        self.problems.append(f"{label}: {text}")
        self.line(label, f"MISSING: {text}")

    def warning(self, label: str, text: str) -> None:
        self.warnings.append(f"{label}: {text}")
        self.line(label, f"WARNING: {text}")


def _declared_requirements() -> list:
    """The package's own requirements (no extras): the checkout's pyproject.toml, else the installed metadata."""
    from packaging.requirements import Requirement

    from suite.lock import REPO

    pyproject = REPO / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        texts = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    else:
        texts = importlib.metadata.requires("rib-suite") or []
    requirements = [Requirement(text) for text in texts]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


def check_dependencies(found: Findings) -> None:
    from suite.lock import installed_versions, normalize

    installed = installed_versions()
    requirements = _declared_requirements()
    bad = []
    for requirement in requirements:
        have = installed.get(normalize(requirement.name))
        if have is None:
            bad.append(f"{requirement.name} not installed")
        elif not requirement.specifier.contains(have, prereleases=True):
            bad.append(f"{requirement.name} {have} outside {requirement.specifier}")
    if bad:
        found.problem("requirements", "; ".join(bad) + " (pip install -e '.[test]' -c requirements/test.txt)")
    else:
        found.line("requirements", f"all {len(requirements)} of the package installed within pyproject's ranges")
    snakemake = shutil.which("snakemake")
    beside = Path(sys.executable).parent / "snakemake"  # a virtual environment that is not activated
    if snakemake is not None:
        found.line("snakemake", f"{installed.get('snakemake', '?')} ({snakemake})")
    elif beside.is_file():
        found.warning("snakemake", f"{beside} is not on PATH: activate the environment before `snakemake`")
    else:
        found.problem(
            "snakemake", "no `snakemake` executable (the workflow's runner): install the package into this environment"
        )
    for label, name in (("slurm plugin", "snakemake-executor-plugin-slurm"), ("flash-attn", "flash-attn")):
        if name in installed:
            found.line(label, f"{installed[name]} installed")


def check_lock(found: Findings) -> None:
    from suite.lock import lock_status

    try:
        status = lock_status()
    except (ValueError, OSError) as err:  # a damaged lock file: one failed check, the others still run
        found.problem("lock", f"cannot read the lock: {err}")
        return
    digest = (status["lock_sha256"] or "")[:12]
    where = f"{status['lock_file']} (sha256 {digest}...)" if status["lock_file"] else "no lock file"
    if status["matches"]:
        found.line("lock", f"{where}: installed versions match")
        return
    found.warning(
        "lock",
        f"{where}: {len(status['differences'])} difference(s); results record the mismatch "
        "(pip install -e '.[test]' -c requirements/test.txt)",
    )
    for difference in status["differences"]:
        found.line("", f"- {difference}")


def check_torch(found: Findings, device: str):
    """Import torch, name the devices; returns (torch, device types to resolve backends on) or (None, [])."""
    try:
        import torch
    except Exception as err:  # noqa: BLE001 - a broken install fails in many ways
        found.problem("torch", f"does not import ({type(err).__name__}: {err})")
        return None, []
    cuda = torch.version.cuda
    found.line("torch", f"{torch.__version__} (built for CUDA {cuda})" if cuda else f"{torch.__version__} (CPU build)")
    found.section("devices")
    from suite.env import device_name

    try:
        torch.ones(4, 4) @ torch.ones(4, 4)
        found.line("cpu", device_name("cpu"))
    except Exception as err:  # noqa: BLE001
        found.problem("cpu", f"torch cannot compute on the CPU ({type(err).__name__}: {err})")
    types = ["cpu"]
    if torch.cuda.is_available():
        types.append("cuda")
        found.line(
            "cuda",
            f"{torch.cuda.device_count()} device(s); driver/runtime CUDA {cuda}; cuDNN "
            f"{torch.backends.cudnn.version()}",
        )
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            found.line(
                f"cuda:{index}",
                f"{props.name}, compute capability {props.major}.{props.minor}, {props.total_memory / 2**30:.1f} GiB",
            )
    else:
        found.line("cuda", "no CUDA device visible" + (" (a CUDA build runs on the CPU)" if cuda else ""))
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if "cuda" not in types or index >= torch.cuda.device_count():
            found.problem(
                "device",
                f"--device {device} is not usable here (CUDA devices: "
                f"{torch.cuda.device_count() if 'cuda' in types else 0})",
            )
    elif device != "cpu":
        found.problem("device", f"--device {device!r}: expected cpu, cuda or cuda:N")
    return torch, types


def check_flex(found: Findings, torch, device_types: list[str], skip: bool) -> None:
    """Compile FlexAttention through the network's own RPB path, once per device type."""
    from suite.models.attention import flash_attn_func, rpb_attention
    from suite.models.positional import RelativePositionBias

    func = flash_attn_func()
    if func is not None:
        found.line(
            "flash-attn", f"imports ({importlib.metadata.version('flash-attn')}): backend `flash` uses it on CUDA"
        )
    else:
        found.line("flash-attn", "not installed: backend `flash` uses SDPA's FLASH_ATTENTION / cuDNN kernels")
    for kind in device_types:
        label = f"flex {kind}"
        if skip:
            found.line(label, "not checked (--skip-compile)")
            continue
        dtype = torch.bfloat16 if kind == "cuda" else torch.float32
        q, k, v = (torch.randn(1, 1, 16, 16, device=kind, dtype=dtype) for _ in range(3))
        rpb = RelativePositionBias(heads=1, window=4).to(kind)
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                rpb_attention(q, k, v, rpb, "flex")
                failure = next((str(w.message) for w in caught if "FlexAttention" in str(w.message)), None)
            except Exception as err:  # noqa: BLE001
                failure = f"{type(err).__name__}: {err}"
        if failure is None:
            found.line(label, "FlexAttention compiles and runs (forward)")
        else:
            found.warning(label, f"FlexAttention does not compile: {failure.splitlines()[0]}")


def check_backends(found: Findings, torch, device_types: list[str]) -> None:
    """The backend `auto` picks per device, dtype, phase and bias, with the models' own reason."""
    from suite.models import BIASES, explain_backend

    print(f"{'device':<8}{'dtype':<10}{'phase':<7}{'bias':<10}{'backend':<8}why", file=found.out)
    for kind in device_types:
        for dtype in (torch.float32, torch.bfloat16):
            for phase in ("eval", "train"):
                for bias in BIASES:
                    backend, why = explain_backend(bias, torch.device(kind), dtype=dtype, needs_grad=phase == "train")
                    name = str(dtype).removeprefix("torch.")
                    print(f"{kind:<8}{name:<10}{phase:<7}{bias:<10}{backend:<8}{why}", file=found.out)


def check_metrics(found: Findings) -> None:
    try:
        import pyiqa  # noqa: F401 - the import itself is the check: evaluation needs it
    except Exception as err:  # noqa: BLE001
        found.problem("pyiqa", f"does not import ({type(err).__name__}: {err})")
        return
    found.line("pyiqa", f"{importlib.metadata.version('pyiqa')} (imports)")
    from suite.metrics import DEFAULT_PROTOCOL, PROTOCOLS
    from suite.metrics.fidelity import PROTOCOL_DESCRIPTIONS

    found.line("protocol", f"{DEFAULT_PROTOCOL} (default): {PROTOCOL_DESCRIPTIONS[DEFAULT_PROTOCOL]}")
    for other in PROTOCOLS:
        if other != DEFAULT_PROTOCOL:
            found.line("", f"also: {other} (suite eval --protocol {other}): {PROTOCOL_DESCRIPTIONS[other]}")


def check_threads(found: Findings, torch) -> None:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = f"{usable} CPU(s) usable by this process (of {os.cpu_count()})"
    if torch is not None:
        text += f"; torch intra-op {torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}"
    found.line("threads", text)
    pinned = {name: os.environ[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if name in os.environ}
    if pinned:
        found.line("", ", ".join(f"{name}={value}" for name, value in pinned.items()))


def _existing(path: Path) -> Path:
    """`path` or its nearest existing parent: where a folder not made yet will live."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(found: Findings, folders: dict[str, Path], min_free_gb: float) -> None:
    for label, folder in folders.items():
        where = _existing(folder)
        free = shutil.disk_usage(where).free / 2**30
        text = f"{folder.absolute()}: {free:.1f} GiB free"
        if not os.access(where, os.W_OK):
            found.problem(label, f"{where} is not writable")
        elif free < min_free_gb:
            found.problem(label, f"{text}, below --min-free-gb {min_free_gb:g}")
        else:
            found.line(label, text)


def diagnose(args: argparse.Namespace, out=None) -> Findings:
    found = Findings(out)
    from suite.env import run_record

    record = run_record()
    found.section("software")
    found.line("python", f"{platform.python_version()} ({sys.executable})")
    if sys.version_info < (3, 11):
        found.problem("python", "3.11 or newer needed (snakemake 9)")
    commit = record.get("git_commit")
    state = " with uncommitted changes" if record.get("git_dirty") else ""
    found.line("suite", record["suite_version"] + (f" (git {commit[:12]}{state})" if commit else ""))
    check_dependencies(found)
    check_lock(found)
    torch, device_types = check_torch(found, args.device)
    if torch is not None:
        found.section("attention")
        check_flex(found, torch, device_types, args.skip_compile)
        check_backends(found, torch, device_types)
    found.section("metrics")
    check_metrics(found)
    found.section("machine")
    check_threads(found, torch)
    check_disk(found, {"data": args.data_root, "results": args.results}, args.min_free_gb)
    return found


def run(args: argparse.Namespace) -> int:
    found = diagnose(args)
    print()
    if found.problems:
        print("NOT READY: " + "; ".join(found.problems))
        return 1
    note = f" ({len(found.warnings)} warning(s) above)" if found.warnings else ""
    print(f"OK: everything the default workflow needs is in place{note}")
    return 0
