"""`suite profile sweep`: a grid of (window, patch) points x phases x bias variants from a YAML
config, each point profiled in a fresh worker process (honest peak memory, crash isolation), an
attention-only benchmark per point (suite.profiling.attention), and the tables of
suite.profiling.tables: `profile.{csv,json}`, `speedup.{csv,json}` and `attention.{csv,json}`.

A point that runs out of memory is a row with status `oom` and the sweep goes on; a worker that
dies or overruns `point_timeout_s` is a row with status `error` / `timeout`. Finished points are
kept in `<out>/points/`. Re-running into a folder that holds a sweep needs a flag: `--resume`
continues an unfinished sweep (killed, or stopped by its time budget) and recomputes a finished one
(a forced re-run: the old sweep's files git holds are replaced in place, the rest moved to
`<out>/replaced/<UTC time>/`, by `suite.files.clear_for_rerun`); `--fresh` deletes the old sweep first. Sweep files live in one folder, suite/profiling/configs/; `--config NAME` names one.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from suite.env import run_record
from suite.files import clear_for_rerun, write_text_atomic
from suite.models.biases import BIAS_PARAMS
from suite.models.presets import ModelConfigError, resolve_model_config
from suite.overrides import short_repr
from suite.profiling import kernels, tables
from suite.profiling.attention import AttentionSpec
from suite.profiling.measure import PHASES, PointSpec, spec_columns
from suite.profiling.precision import check_precision
from suite.profiling.worker import run_task
from suite.rows import render

CONFIG_DIR = Path(__file__).parent / "configs"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding `suite/`, for workers' PYTHONPATH

TOP_KEYS = {
    "preset",
    "overrides",
    "scale",
    "device",
    "precision",
    "compile",
    "threads",
    "seed",
    "isolation",
    "memory_cap_gb",
    "point_timeout_s",
    "time_budget_s",
    "profiler",
    "phases",
    "variants",
    "points",
    "attention",
    "description",
}
PHASE_KEYS = {"batch", "patch", "warmup", "steps"}
PROFILER_KEYS = {"warmup", "active"}
VARIANT_KEYS = {"bias", "backend", "compile"}
POINT_KEYS = {"window", "patch", "phases", "biases"}
ATTENTION_KEYS = {"batch", "warmup", "steps"}


@dataclass
class Task:
    """One unit of work for a worker: a profiled setting or a point's attention micro-benchmark."""

    kind: str  # "profile" | "attention"
    name: str
    spec: dict[str, Any]
    identity: dict[str, Any] = field(default_factory=dict)  # row columns for a failure the worker could not report


@dataclass
class SweepConfig:
    path: str
    raw: dict[str, Any]
    tasks: list[Task]


def resolve_config_path(config: str) -> Path:
    """A YAML file, or the name of a built-in config (`cpu`, `gpu`)."""
    path = Path(config)
    if path.is_file():
        return path
    builtin = CONFIG_DIR / f"{config}.yaml"
    if builtin.is_file():
        return builtin
    names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"sweep config {config!r} is neither a file nor a built-in config ({names})")


def _check_keys(where: str, mapping: Any, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(mapping, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    unknown = sorted(key if isinstance(key, str) else short_repr(key) for key in set(mapping) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)[:300]}; expected some of {expected}")
    missing = sorted(required - set(mapping))
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    return mapping


def _positive_int(where: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{where}: expected an integer >= {minimum}, got {short_repr(value)}")
    return value


def load_config(config: str) -> SweepConfig:
    """Read and validate a sweep file; errors name the file and the field. Tasks in file order: per
    point, its phases x variants, then its attention-only benchmark."""
    path = resolve_config_path(config)
    where = str(path)
    raw = _read_yaml(path)
    model = _check_top(where, raw)
    phases = _phases(where, raw)
    variants = _variants(where, raw)
    if not isinstance(raw["points"], list) or not raw["points"]:
        raise ValueError(f"{where}: points must be a non-empty list of {{window, patch}}")
    profiler = _check_keys(f"{where}: profiler", raw.get("profiler", {}), PROFILER_KEYS)
    common = dict(
        preset=raw["preset"],
        precision=raw["precision"],
        device=str(raw["device"]),
        scale=raw.get("scale", 2),
        threads=raw.get("threads"),
        seed=raw.get("seed", 0),
        overrides=raw.get("overrides") or {},
        profile_warmup=profiler.get("warmup", 1),
        profile_active=profiler.get("active", 1),
    )
    tasks: list[Task] = []
    for i, point in enumerate(raw["points"]):
        tasks += _point_tasks(where, i, point, raw, model, phases, variants, common)
    return SweepConfig(where, raw, tasks)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: not valid YAML ({first})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file ({err})") from None


def _check_top(where: str, raw: Any) -> dict[str, Any]:
    """The top-level fields; returns the model configuration (preset + overrides, validated in one place)."""
    _check_keys(where, raw, TOP_KEYS, {"preset", "device", "precision", "phases", "variants", "points"})
    try:
        check_precision(raw["precision"])
        model = resolve_model_config(raw["preset"], "rib", raw.get("scale", 2), raw.get("overrides") or {})
    except ModelConfigError as err:
        raise ValueError(f"{where}: {err}") from None
    if not isinstance(raw.get("compile", False), bool):
        raise ValueError(f"{where}: compile must be true or false, got {short_repr(raw['compile'])}")
    device = str(raw["device"])
    isolation = raw.get("isolation", "process")
    if isolation not in ("process", "none"):
        raise ValueError(f"{where}: isolation {short_repr(isolation)} is not one of process, none")
    cap = raw.get("memory_cap_gb")
    if cap is not None:
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap <= 0:
            raise ValueError(f"{where}: memory_cap_gb must be a positive number, got {short_repr(cap)}")
        if not device.startswith("cpu") or isolation != "process":
            raise ValueError(
                f"{where}: memory_cap_gb applies to CPU points in worker processes (device cpu, isolation process)"
            )
    if raw.get("point_timeout_s") is not None:
        _positive_int(f"{where}: point_timeout_s", raw["point_timeout_s"])
    if raw.get("time_budget_s") is not None:
        _positive_int(f"{where}: time_budget_s", raw["time_budget_s"], minimum=0)
    return model


def _phases(where: str, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    phases = _check_keys(f"{where}: phases", raw["phases"], set(PHASES))
    if not phases:
        raise ValueError(f"{where}: phases: name at least one of {', '.join(PHASES)}")
    for phase, settings in phases.items():
        _check_keys(f"{where}: phases.{phase}", settings, PHASE_KEYS, {"batch"})
    return phases


def _variants(where: str, raw: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(bias, backend, compile) per variant; `compile` defaults to the file's top-level value."""
    if not isinstance(raw["variants"], list) or not raw["variants"]:
        raise ValueError(f"{where}: variants must be a non-empty list")
    variants = []
    for i, variant in enumerate(raw["variants"]):
        _check_keys(f"{where}: variants[{i}]", variant, VARIANT_KEYS, {"bias"})
        compiled = variant.get("compile", raw.get("compile", False))
        if not isinstance(compiled, bool):
            raise ValueError(f"{where}: variants[{i}].compile must be true or false, got {short_repr(compiled)}")
        variants.append((variant["bias"], variant.get("backend", "auto"), compiled))
    if len(set(variants)) != len(variants):
        raise ValueError(f"{where}: variants: the same bias, backend and compile are listed twice")
    return variants


def _point_tasks(
    where: str,
    i: int,
    point: Any,
    raw: dict[str, Any],
    model: dict[str, Any],
    phases: dict[str, dict[str, Any]],
    variants: list[tuple[str, str, bool]],
    common: dict[str, Any],
) -> list[Task]:
    """The profile tasks of one point (its phases x the variants of its biases) and its attention task."""
    point_where = f"{where}: points[{i}]"
    _check_keys(point_where, point, POINT_KEYS, {"window", "patch"})
    window = _positive_int(f"{point_where}.window", point["window"])
    patch = _positive_int(f"{point_where}.patch", point["patch"])
    if patch < window:
        raise ValueError(
            f"{point_where}: patch {patch} is smaller than window {window}; RIB would clamp its window to "
            f"the patch while RPB pads the patch up to its window, so they would not compute the same attention"
        )
    point_phases = point.get("phases", list(phases))
    if not isinstance(point_phases, list) or not point_phases:
        raise ValueError(f"{point_where}.phases: expected a non-empty list of phases, got {short_repr(point_phases)}")
    for phase in point_phases:
        if phase not in phases:
            raise ValueError(
                f"{point_where}.phases: {short_repr(phase)} has no settings under phases ({', '.join(phases)})"
            )
    listed = sorted({bias for bias, _, _ in variants})
    point_biases = point.get("biases", listed)
    if not isinstance(point_biases, list) or not point_biases or not set(point_biases) <= set(listed):
        raise ValueError(
            f"{point_where}.biases: expected a non-empty list of the variants' biases "
            f"({', '.join(listed)}), got {short_repr(point_biases)}"
        )
    tasks = []
    for phase in point_phases:
        settings = phases[phase]
        # A phase may fix its own input size (inference on larger images than training patches).
        phase_patch = settings.get("patch", patch)
        if phase_patch < window:
            raise ValueError(
                f"{where}: phases.{phase}.patch {phase_patch} is smaller than window {window} of points[{i}]"
            )
        for bias, backend, compiled in variants:
            if bias not in point_biases:
                continue
            spec = PointSpec(
                bias=bias,
                backend=backend,
                compile=compiled,
                phase=phase,
                window=window,
                patch=phase_patch,
                batch=settings["batch"],
                warmup=settings.get("warmup", 3),
                steps=settings.get("steps", 10),
                **common,
            )
            try:
                spec.validate()
            except ValueError as err:
                raise ValueError(f"{point_where} ({bias}, {backend}, {phase}): {err}") from None
            tasks.append(Task("profile", spec.name, spec.to_dict(), spec_columns(spec, "")))
    if raw.get("attention"):
        point_variants = [variant for variant in variants if variant[0] in point_biases]
        tasks.append(
            _attention_task(f"{where}: attention", raw, model, phases, point_variants, window, patch, common["device"])
        )
    return tasks


def _attention_task(where, raw, model, phases, variants, window, patch, device) -> Task:
    settings = _check_keys(where, raw["attention"], ATTENTION_KEYS)
    default_batch = phases.get("train", next(iter(phases.values())))["batch"]
    pairs = list(dict.fromkeys((bias, backend) for bias, backend, _ in variants))  # compile does not apply
    overrides = raw.get("overrides") or {}
    spec = AttentionSpec(
        window=window,
        patch=patch,
        batch=settings.get("batch", default_batch),
        heads=model["heads"],
        head_dim=model["dim"] // model["heads"],
        ranks=sorted(set(model["ranks"])),
        variants=pairs,
        bias_options={key: value for key, value in overrides.items() if key in BIAS_PARAMS},
        precision=raw["precision"],
        device=device,
        warmup=settings.get("warmup", 2),
        steps=settings.get("steps", 5),
        threads=raw.get("threads"),
        seed=raw.get("seed", 0),
    )
    try:
        spec.validate()
    except ValueError as err:
        raise ValueError(f"{where} (window {window}): {err}") from None
    return Task("attention", spec.name, spec.to_dict(), {"name": spec.name, "window": window, "patch": patch})


def failure_rows(task: Task, status: str, message: str, command: str) -> list[dict[str, Any]]:
    row = {**task.identity, "status": status, "error": message}
    if task.kind == "profile":
        row["command"] = command
    if task.kind == "attention":
        row.update(variant="all", **{"pass": ""})
    return [row]


def run_in_worker(
    task: Task,
    work_dir: Path,
    trace_root: Path,
    log_path: Path,
    command: str,
    timeout: float | None,
    memory_cap: float | None,
) -> tuple[list[dict[str, Any]], bool]:
    """Run one task in a fresh interpreter (honest peak memory, crash isolation, a time limit):
    (rows, whether they are a measurement to keep). A timeout or a crash gives a `timeout` / `error`
    row, not kept, so a resumed sweep tries that task again."""
    request_path = work_dir / f"{task.name}.request.json"
    result_path = work_dir / f"{task.name}.result.json"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.unlink(missing_ok=True)
    request = {
        "kind": task.kind,
        "name": task.name,
        "spec": task.spec,
        "trace_root": str(trace_root),
        "command": command,
        "result": str(result_path),
        "memory_cap_gb": memory_cap,
    }
    write_text_atomic(request_path, json.dumps(request, indent=1) + "\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    try:
        with open(log_path, "w", encoding="utf-8") as log_file:
            proc = subprocess.run(
                [sys.executable, "-m", "suite.profiling.worker", str(request_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
            )
    except subprocess.TimeoutExpired:
        message = f"worker ran past its time limit of {timeout:g} s; log: {log_path}"
        return failure_rows(task, "timeout", message, command), False
    finally:
        request_path.unlink(missing_ok=True)
    if result_path.exists():
        rows = json.loads(result_path.read_text(encoding="utf-8"))["rows"]
        result_path.unlink()
        return rows, True
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
    message = f"worker ended with {how} and no result: {tail(log_path)}"
    return failure_rows(task, "error", message, command), False


SWEEP_PARTS = (
    "points",
    "traces",
    "logs",
    "sweep.json",
    "command.txt",
    *(f"{stem}.{ext}" for stem in ("profile", "speedup", "attention") for ext in ("csv", "json")),
)


def sweep_state(out_dir: Path) -> str | None:
    """`complete`, `incomplete` (stopped by its time budget), `interrupted` (killed) or None (no sweep)."""
    path = out_dir / "sweep.json"
    if not path.exists():
        return "interrupted" if (out_dir / "points").is_dir() else None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        last = record["invocations"][-1]
    except (ValueError, KeyError, IndexError, TypeError):
        return "interrupted"
    if "finished" not in last:
        return "interrupted"
    return "complete" if last.get("tasks_left") == 0 else "incomplete"


def prepare_out(out_dir: Path, resume: bool, fresh: bool, log: Callable[[str], None]) -> None:
    """Apply the re-run rules to an output folder that may hold an earlier sweep (see the module doc)."""
    state = sweep_state(out_dir)
    if state is None:
        return
    if fresh:
        for part in SWEEP_PARTS:
            target = out_dir / part
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        log(f"--fresh: deleted the earlier sweep in {out_dir}")
        return
    if not resume:
        raise ValueError(
            f"{out_dir} holds an {state} sweep; pass --resume to continue it (a finished one is measured "
            f"again, the old results moved aside unless git holds them) or --fresh to delete it first"
        )
    if state == "complete":  # a forced re-run: recompute, the old measurements kept by git or beside
        aside = clear_for_rerun(out_dir, SWEEP_PARTS)
        where = f"old results in {aside}" if aside else "git holds the old results"
        log(f"--resume: the sweep in {out_dir} had finished; measuring again ({where})")
    else:
        log(f"--resume: continuing the {state} sweep in {out_dir}")


class Sweep:
    """Runs the tasks of a config into an output folder, reusing finished points from `points/`."""

    def __init__(self, config: SweepConfig, out_dir: Path, command: str, log: Callable[[str], None]) -> None:
        self.config = config
        self.out_dir = out_dir
        self.command = command
        self.log = log
        self.isolation = config.raw.get("isolation", "process")
        self.timeout = config.raw.get("point_timeout_s")
        self.budget = config.raw.get("time_budget_s")
        self.memory_cap = config.raw.get("memory_cap_gb")
        self.points_dir = out_dir / "points"
        self.trace_root = out_dir / "traces"
        self.results: dict[str, list[dict[str, Any]]] = {}

    def cached(self, task: Task) -> list[dict[str, Any]] | None:
        path = self.points_dir / f"{task.name}.json"
        if not path.exists():
            return None
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        if saved.get("kind") != task.kind or saved.get("spec") != task.spec:
            return None  # measured under other settings: measure again
        return saved["rows"]

    def save(self, task: Task, rows: list[dict[str, Any]]) -> None:
        document = {"kind": task.kind, "spec": task.spec, "rows": rows}
        write_text_atomic(self.points_dir / f"{task.name}.json", json.dumps(document, indent=1, default=str) + "\n")

    def run(self) -> int:
        """Returns the number of tasks left undone (time budget spent)."""
        start = time.monotonic()
        self.points_dir.mkdir(parents=True, exist_ok=True)
        self.write_provenance(started=True)
        total = len(self.config.tasks)
        left = 0
        ran_one = False
        for index, task in enumerate(self.config.tasks, 1):
            rows = self.cached(task)
            if rows is not None:
                self.results[task.name] = rows
                self.log(f"[{index}/{total}] {task.name}: kept from an earlier run ({summary(rows)})")
                continue
            # Past the budget no new task starts, but each invocation runs at least one: progress is certain.
            if self.budget is not None and ran_one and time.monotonic() - start >= self.budget:
                left = total - index + 1
                self.log(
                    f"time budget of {self.budget} s spent: {left} task(s) left; "
                    "run the same command with --resume to continue"
                )
                break
            task_start = time.monotonic()
            ran_one = True
            rows, keep = self.execute(task)
            self.results[task.name] = rows
            if keep:
                self.save(task, rows)
            self.write_tables()
            self.log(f"[{index}/{total}] {task.name}: {summary(rows)} [{time.monotonic() - task_start:.0f} s]")
        self.write_tables()
        self.write_provenance(started=False, left=left)
        return left

    def execute(self, task: Task) -> tuple[list[dict[str, Any]], bool]:
        """(rows, whether to keep them for a resumed run). Crashes and timeouts are tried again next run."""
        if self.isolation == "none":
            try:
                return run_task(task.kind, task.spec, self.trace_root, process="shared", command=self.command), True
            except Exception as err:  # noqa: BLE001 - one broken point must not stop the sweep
                message = f"{type(err).__name__}: {str(err).strip()[:500]}"
                return failure_rows(task, "error", message, self.command), True
        return run_in_worker(
            task,
            self.points_dir,
            self.trace_root,
            self.out_dir / "logs" / f"{task.name}.log",
            self.command,
            self.timeout,
            self.memory_cap,
        )

    def rows(self, kind: str) -> list[dict[str, Any]]:
        return [row for task in self.config.tasks if task.kind == kind for row in self.results.get(task.name, [])]

    def write_tables(self) -> None:
        tables.write_tables(self.out_dir, self.rows("profile"), self.rows("attention"))

    def write_provenance(self, started: bool, left: int | None = None) -> None:
        """`sweep.json` (config, and per invocation: the run record, command, load, timing, statuses) and
        `command.txt` (the command line) beside the tables. A resumed sweep adds an invocation."""
        path = self.out_dir / "sweep.json"
        record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        if started:
            record.update(config_path=self.config.path, config=self.config.raw, tasks=len(self.config.tasks))
            record.setdefault("invocations", []).append(
                {
                    **run_record(self.config.raw.get("device")),
                    "command": self.command,
                    "cwd": os.getcwd(),
                    "host": os.uname().nodename,
                    "cpus": os.cpu_count(),
                    "load_at_start": os.getloadavg(),
                }
            )
            write_text_atomic(self.out_dir / "command.txt", self.command + "\n")
        else:
            record["invocations"][-1].update(
                finished=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
                load_at_end=os.getloadavg(),
                tasks_left=left,
                statuses=status_counts(self.rows("profile")),
            )
        write_text_atomic(path, json.dumps(record, indent=1, default=str) + "\n")


def status_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def summary(rows: list[dict[str, Any]]) -> str:
    if len(rows) == 1 and rows[0].get("ms_median") is not None:
        row = rows[0]
        kernels = "+".join(row.get("attention_kernels") or []) or "-"
        return f"{row['status']} {row['ms_median']} ms/iter, peak {row.get('peak_mem_mb')} MiB, attention {kernels}"
    return ", ".join(f"{k} {v}" for k, v in status_counts(rows).items())


def tail(path: Path, lines: int = 3) -> str:
    try:
        text = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])[-600:]


def gpu_slug() -> str:
    """Name of CUDA device 0 as a folder name, asked of a child process so this one keeps CUDA uninitialised."""
    code = "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    name = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if not name:
        raise RuntimeError("--out uses {gpu} but no CUDA device is visible to torch")
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def resolve_out(out: str) -> Path:
    return Path(out.replace("{gpu}", gpu_slug()) if "{gpu}" in out else out)


def invocation(argv: list[str] | None = None) -> str:
    """The command line as a person would type it (`suite ...`)."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "suite"
    if program == "__main__.py":
        program = "python -m suite"
    return " ".join([program] + [shlex.quote(a) for a in argv[1:]])


def speedup_console(profile_rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The speedup table's columns for the biases the sweep ran (registry order)."""
    present = [bias for bias in tables.BIASES if any(row["bias"] == bias for row in profile_rows)]
    return (
        "phase",
        "window",
        "patch",
        "compile",
        *(f"{bias}_{field}" for bias in present for field in ("variant", "status", "ms")),
        *(tables.speedup_column(bias) for bias in present if bias != tables.BASELINE and tables.BASELINE in present),
        *(
            tables.over_none_column(bias)
            for bias in present
            if bias != tables.REFERENCE and tables.REFERENCE in present
        ),
        *(f"{bias}_kernels" for bias in present),
    )


ATTENTION_CONSOLE = (
    "window",
    "patch",
    "n_windows",
    "rank",
    "variant",
    "pass",
    "status",
    "ms_median",
    "ratio_to_none",
    "ratio_to_none_low",
    "ratio_to_none_high",
    "attention_kernels",
)


def report(
    profile_rows: list[dict[str, Any]], attention_rows: list[dict[str, Any]], log: Callable[[str], None]
) -> None:
    """The console tables: speedup and memory per point with the kernel family of every side, and the
    attention-only ratios."""
    log("\nPer point: the fastest variant of each bias, RPB/bias and bias/none time, kernels (speedup.csv):")
    log(render(tables.speedup_rows(profile_rows), speedup_console(profile_rows)))
    for row in profile_rows:
        problem = kernels.kernel_violation(
            row["bias"],
            row.get("backend_resolved") or row["backend"],
            row["device"],
            row.get("attention_kernels") or [],
        )
        if problem and row["status"] == "ok":
            log(f"KERNEL CHECK FAILED for {row['name']}: {problem}")
    attention = [r for r in attention_rows if r.get("pass")]
    if attention:
        log("\nAttention only, time / time of none at head dim D+R (attention.csv):")
        log(render(attention, ATTENTION_CONSOLE))


def run_sweep(
    config: str, out: str, resume: bool = False, fresh: bool = False, log: Callable[[str], None] | None = None
) -> int:
    """Load, run and report a sweep; returns the number of tasks left (0 when complete)."""
    log = log or functools.partial(print, flush=True)  # progress shows up in redirected logs too
    sweep_config = load_config(config)
    out_dir = resolve_out(out)
    prepare_out(out_dir, resume, fresh, log)
    sweep = Sweep(sweep_config, out_dir, invocation(), log)
    log(f"sweep {sweep_config.path}: {len(sweep_config.tasks)} tasks -> {out_dir}")
    left = sweep.run()
    report(sweep.rows("profile"), sweep.rows("attention"), log)
    return left


def dry_run(config: str, out: str | None) -> str:
    """The plan of a sweep without measuring or writing anything: every task, the limits and the budget."""
    sweep_config = load_config(config)
    raw = sweep_config.raw
    lines = [
        f"sweep {sweep_config.path}: {len(sweep_config.tasks)} tasks on {raw['device']}, preset {raw['preset']}, "
        f"precision {raw['precision']}" + (f" -> {out}" if out else "")
    ]
    for index, task in enumerate(sweep_config.tasks, 1):
        spec = task.spec
        if task.kind == "profile":
            what = (
                f"{spec['phase']:<5} window {spec['window']:>3} patch {spec['patch']:>3} batch {spec['batch']:>2} "
                f"{spec['bias']:<4} backend {spec['backend']}{' compiled' if spec['compile'] else ''}"
            )
        else:
            layers = ", ".join(f"{bias} {backend}" for bias, backend in spec["variants"])
            what = f"attention-only window {spec['window']:>3} map {spec['patch']:>3}: {layers}; ranks {spec['ranks']}"
        lines.append(f"  [{index:>2}] {what}")
    timeout = raw.get("point_timeout_s")
    budget = raw.get("time_budget_s")
    lines.append(
        f"time limit per task: {f'{timeout} s' if timeout else 'none'}; budget: "
        + (
            f"no new task starts after {budget} s (the task running then finishes; "
            f"worst case {budget + (timeout or 0)} s); --resume continues"
            if budget is not None
            else "none"
        )
    )
    return "\n".join(lines)
