"""The one attention benchmark: `WindowAttention` layers of the network, one per requested (bias, backend)
of the bias registry (by default RPB on each CPU or GPU backend, RIB and `none` at head dim D) and
`none@D+R` (no bias at the factored biases' kernel head dim D+R, padded like RIB's: the physical floor
RIB can at best reach), timed on the windows one layer sees at a window and map size.

It times the layers' own attention method, `WindowAttention.attend` (window tokens -> the heads'
outputs: the qkv projection into the padded head layout, RIB's factors added in place, the kernel),
so RIB's positional MLP, its extension of q, k, v and the padding are in the time exactly as the
network pays them; the window split and merge and the output projection, equal for all variants,
are not. Forward runs without autograd (as inference does), forward+backward with the projected
input requiring a gradient. All variants of a pass run interleaved on `suite.profiling.timing`.
Used by `suite bench attention` and by the attention-only points of `suite profile sweep`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from suite.models import WindowAttention, resolve_backend
from suite.models.attention import PAD_MULTIPLE
from suite.models.biases import BIAS_PARAMS, BIASES, FACTORED_BIASES, REGISTRY
from suite.profiling import timing
from suite.profiling.flops import attention_flops
from suite.profiling.precision import check_precision, compute_dtype, precision_scope
from suite.profiling.tables import BASELINE
from suite.rows import render

PASSES = ("fwd", "fwd+bwd")
REFERENCE = "none@D+R"


def padded(head_dim: int) -> int:
    return head_dim + -head_dim % PAD_MULTIPLE


@dataclass
class AttentionSpec:
    """One window and map size: the layers' shapes, the backends and how to time them."""

    window: int
    patch: int  # side of the square feature map, rounded up to a multiple of the window
    batch: int
    heads: int
    head_dim: int
    ranks: list[int]
    # (bias, backend) per layer to time, registry biases; RPB may come with several backends
    variants: list[tuple[str, str]] = field(
        default_factory=lambda: [("rpb", "auto"), ("rib", "auto"), ("none", "auto")]
    )
    bias_options: dict[str, Any] = field(default_factory=dict)  # the biases' own model fields (BIAS_PARAMS)
    precision: str = "fp32"
    device: str = "cpu"
    warmup: int = 2
    steps: int = 5
    threads: int | None = None
    seed: int = 0
    clock: str = "wall"

    def __post_init__(self) -> None:
        self.variants = [tuple(variant) for variant in self.variants]  # lists, read back from JSON

    @property
    def side(self) -> int:
        return math.ceil(self.patch / self.window) * self.window

    @property
    def n_windows(self) -> int:
        return self.batch * (self.side // self.window) ** 2

    @property
    def name(self) -> str:
        return f"attention-w{self.window}-p{self.patch}-b{self.batch}-{self.precision}"

    def validate(self) -> None:
        for key in ("window", "patch", "batch", "heads", "head_dim", "steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"attention benchmark: {key} must be a positive integer, got {value!r}")
        if self.warmup < 0:
            raise ValueError(f"attention benchmark: warmup must be >= 0, got {self.warmup!r}")
        if not self.ranks or any(not isinstance(r, int) or r < 1 for r in self.ranks):
            raise ValueError(f"attention benchmark: ranks must be positive integers, got {self.ranks!r}")
        check_precision(self.precision)
        if self.clock not in timing.CLOCKS:
            raise ValueError(f"attention benchmark: clock {self.clock!r} is not one of {', '.join(timing.CLOCKS)}")
        device = torch.device(self.device)
        if self.clock == "cpu" and (device.type != "cpu" or self.threads != 1):
            raise ValueError("clock 'cpu' (this thread's CPU time) needs device cpu and threads 1")
        if not self.variants or len(set(self.variants)) != len(self.variants):
            raise ValueError(
                f"attention benchmark: variants must be distinct (bias, backend) pairs, got {self.variants!r}"
            )
        for bias, backend in self.variants:
            resolve_backend(bias, backend, device)
        unknown = sorted(set(self.bias_options) - set(BIAS_PARAMS))
        if unknown:
            raise ValueError(f"attention benchmark: bias_options {', '.join(unknown)} are no bias's fields")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Variant:
    label: str
    bias: str
    backend: str  # as requested
    layer: WindowAttention
    kernel_head_dim: int


def variant_label(bias: str, backend: str, variants: list[tuple[str, str]]) -> str:
    """The row's variant: the bias, with its backend where it was asked for explicitly for an additive bias
    ("rpb-sdpa") or where the bias is timed with several backends."""
    several = sum(1 for other, _ in variants if other == bias) > 1
    explicit = backend != "auto" and not REGISTRY[bias].flash
    return f"{bias}-{backend}" if several or explicit else bias


def variants(spec: AttentionSpec, rank: int, device: torch.device) -> list[Variant]:
    """The layers to time at one rank (of the biases that read it), built under one seed as the network
    builds them, in registry order, then the reference none@D+R."""
    dim = spec.heads * spec.head_dim
    ref_dim = padded(spec.head_dim + rank)

    def layer(width: int, bias: str, backend: str) -> WindowAttention:
        torch.manual_seed(spec.seed)
        return WindowAttention(
            width, spec.heads, spec.window, bias=bias, rank=rank, backend=backend, **spec.bias_options
        ).to(device)

    ordered = sorted(spec.variants, key=lambda variant: BIASES.index(variant[0]))
    found = [
        Variant(
            variant_label(bias, backend, spec.variants),
            bias,
            backend,
            layer(dim, bias, backend),
            ref_dim if bias in FACTORED_BIASES else padded(spec.head_dim),
        )
        for bias, backend in ordered
    ]
    none_backend = next((backend for bias, backend in spec.variants if bias == "none"), "auto")
    reference = layer(dim, "none", none_backend)
    # No bias at the factored kernel head dim, with their projection shape (C in, heads x (D+R padded) out): the
    # layer's own zero-row padding widened from D's to D+R's, so only the kernel's head dim differs.
    reference.extra_channels = ref_dim - spec.head_dim
    found.append(Variant(REFERENCE, "none", none_backend, reference, ref_dim))
    return found


def attention_step(variant: Variant, spec: AttentionSpec, device: torch.device, backward: bool) -> Callable[[], None]:
    """One call of the layer's attention method on the window tokens (B*windows, N, C) of a map, as its
    forward makes them; with `backward`, also its gradient (the tokens requiring one, as in a network)."""
    layer = variant.layer
    generator = torch.Generator().manual_seed(spec.seed)
    n = spec.window * spec.window
    tokens = torch.randn(spec.n_windows, n, layer.dim, generator=generator).to(device).requires_grad_(backward)
    scope = precision_scope(layer, spec.precision, device)
    layer.train(backward)  # eval without autograd: the layer may reuse what does not depend on the input

    def call() -> torch.Tensor:
        return layer.attend(tokens, spec.window, spec.window)

    if not backward:

        def forward() -> None:
            with torch.no_grad(), scope():
                call()

        return forward

    with scope():
        grad_out = torch.randn_like(call().detach())

    def forward_backward() -> None:
        with scope():
            out = call()
        out.backward(grad_out)
        tokens.grad = None
        for param in layer.parameters():
            param.grad = None

    return forward_backward


def families(step: Callable[[], None], device: torch.device) -> list[str]:
    """The attention kernel families one call ran, read from the profiler."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from suite.profiling import kernels

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        timing.synchronize(device)
    events = prof.events()
    operators = [e.name for e in events if e.device_type == DeviceType.CPU]
    device_kernels = [e.name for e in events if e.device_type != DeviceType.CPU]
    return kernels.attribute(operators, device_kernels)["families"]


def bench(spec: AttentionSpec) -> list[dict[str, Any]]:
    """Rows (one per rank, pass and variant) with `ratio_to_none`: the geometric mean over rounds of
    time / time of `none@D+R` in the same round, with its interval; `ms_rounds` keeps every round's time."""
    spec.validate()
    device = timing.prepare_device(spec.device, spec.threads)
    rows: list[dict[str, Any]] = []
    n = spec.window * spec.window
    for rank in spec.ranks:
        found = variants(spec, rank, device)
        for pass_name in PASSES:
            backward = pass_name == "fwd+bwd"
            steps = {v.label: attention_step(v, spec, device, backward) for v in found}
            times, status = timing.time_interleaved(steps, device, spec.warmup, spec.steps, spec.clock)
            reference = times.get(REFERENCE) if status[REFERENCE][0] == timing.OK else None
            for variant in found:
                state, why = status[variant.label]
                row: dict[str, Any] = {
                    "name": spec.name,
                    "window": spec.window,
                    "patch": spec.patch,
                    "batch": spec.batch,
                    "n_windows": spec.n_windows,
                    "heads": spec.heads,
                    "head_dim": spec.head_dim,
                    "rank": rank,
                    "variant": variant.label,
                    "bias": variant.bias,
                    "backend": resolve_backend(
                        variant.bias,
                        variant.backend,
                        device,
                        compute_dtype(spec.precision),
                        backward and not REGISTRY[variant.bias].flash,
                    ),
                    "kernel_head_dim": variant.kernel_head_dim,
                    "pass": pass_name,
                    "precision": spec.precision,
                    "device": spec.device,
                    "status": state,
                    "error": why,
                    "ms_median": None,
                    "ms_iqr": None,
                    "ms_min": None,
                    "ms_max": None,
                    "rounds": 0,
                    "ms_rounds": [],
                    "ratio_to_none": None,
                    "ratio_to_none_low": None,
                    "ratio_to_none_high": None,
                    "attention_kernels": [],
                    "gflop_fwd": round(
                        attention_flops(spec.n_windows, spec.heads, n, variant.kernel_head_dim) / 1e9, 4
                    ),
                }
                if variant.label in times:
                    row.update(timing.summarise(times[variant.label]))
                    row["ms_rounds"] = [round(ms, 4) for ms in times[variant.label]]
                    row["attention_kernels"] = families(steps[variant.label], device)
                    if reference is not None and state == timing.OK:
                        row.update(timing.ratio_fields("ratio_to_none", times[variant.label], reference))
                rows.append(row)
            del steps
            timing.release(device)
    return rows


RATIO_SUFFIXES = ("", "_low", "_high", "_verdict")


def ratio_columns(biases: list[str]) -> tuple[str, ...]:
    """The columns of `pair_ratios` for the biases of a benchmark: the baseline's (RPB's) best over each other
    bias's best, and each factored bias over none@D+R, each with its interval and verdict."""
    ratios = [f"{BASELINE}_over_{bias}" for bias in BIASES if bias in biases and bias != BASELINE]
    ratios += [f"{bias}_over_none_at_d_plus_r" for bias in FACTORED_BIASES if bias in biases]
    return (
        "window",
        "rank",
        "pass",
        f"{BASELINE}_variant",
        *(f"{name}{suffix}" for name in ratios for suffix in RATIO_SUFFIXES),
    )


def verdict(fields: dict[str, float], name: str) -> str:
    """Whether the interval of a ratio excludes 1: "faster" / "slower" (the numerator's side), or
    "not resolved" when the rounds spread too wide to rank the two."""
    if fields[f"{name}_high"] < 1:
        return "faster"
    if fields[f"{name}_low"] > 1:
        return "slower"
    return "not resolved"


def pair_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rank and pass: RPB (its fastest backend that ran) over each other bias (its fastest), and each
    factored bias over none@D+R; each ratio paired by round (the rows of one rank and pass ran interleaved),
    with its interval and verdict (the numerator "faster", "slower", or "not resolved")."""
    out = []
    biases = sorted({row["bias"] for row in rows if row["variant"] != REFERENCE}, key=BIASES.index)
    keys = sorted({(row["rank"], row["pass"]) for row in rows}, key=lambda k: (k[0], PASSES.index(k[1])))
    for rank, pass_name in keys:
        group = [r for r in rows if r["rank"] == rank and r["pass"] == pass_name and r["status"] == timing.OK]
        reference = next((r for r in group if r["variant"] == REFERENCE), None)
        best = {
            bias: min(
                (r for r in group if r["bias"] == bias and r["variant"] != REFERENCE),
                key=lambda r: r["ms_median"],
                default=None,
            )
            for bias in biases
        }
        record: dict[str, Any] = dict.fromkeys(ratio_columns(biases))
        record.update({"window": rows[0]["window"], "rank": rank, "pass": pass_name})
        baseline = best.get(BASELINE)
        record[f"{BASELINE}_variant"] = baseline["variant"] if baseline else None
        pairs = [(f"{BASELINE}_over_{bias}", baseline, row) for bias, row in best.items() if bias != BASELINE]
        pairs += [
            (f"{bias}_over_none_at_d_plus_r", row, reference) for bias, row in best.items() if bias in FACTORED_BIASES
        ]
        for name, numerator, denominator in pairs:
            if numerator is None or denominator is None:
                continue
            fields = timing.ratio_fields(name, numerator["ms_rounds"], denominator["ms_rounds"], digits=3)
            record.update(fields, **{f"{name}_verdict": verdict(fields, name)})
        out.append(record)
    return out


def parse_variant(text: str) -> tuple[str, str]:
    """ "rpb:math" -> ("rpb", "math"), "rope" -> ("rope", "auto"); ValueError naming the text otherwise."""
    bias, _, backend = text.partition(":")
    if bias not in REGISTRY:
        raise ValueError(f"variant {text!r}: bias {bias!r} is not one of {', '.join(BIASES)}")
    return bias, backend or "auto"


def default_variants(device: str) -> list[tuple[str, str]]:
    """RPB on its two kernels of the device (FlexAttention has no CPU backward in torch), RIB and none."""
    rpb = ["sdpa", "flex"] if torch.device(device).type == "cuda" else ["math", "sdpa"]
    return [("rpb", backend) for backend in rpb] + [("rib", "auto"), ("none", "auto")]


def run_benchmark(
    windows: list[int],
    preset: str,
    ranks: list[int] | None,
    overrides: list[str],
    map_size: int,
    batch: int,
    rounds: int,
    warmup: int,
    device: str,
    precision: str,
    variants_: list[tuple[str, str]] | None,
    threads: int | None,
    clock: str,
    seed: int,
    out_dir: Path,
    command: str,
    log: Callable[[str], None],
) -> list[Path]:
    """`suite bench attention`: one AttentionSpec per window from the preset's layer shapes; logs a table
    per window and writes attention.{json,csv} (rows), attention_ratios.{json,csv} and bench.json."""
    from suite.env import resolve_device, run_record
    from suite.files import write_json_atomic
    from suite.models.presets import resolve_model_config
    from suite.overrides import parse_field_overrides
    from suite.profiling import tables

    requested = parse_field_overrides(overrides)
    model = resolve_model_config(preset, "rib", 2, requested)
    device = resolve_device(device)
    chosen = list(variants_) if variants_ else default_variants(device)
    specs = [
        AttentionSpec(
            window=window,
            patch=map_size,
            batch=batch,
            heads=model["heads"],
            head_dim=model["dim"] // model["heads"],
            ranks=list(ranks) if ranks else sorted(set(model["ranks"])),
            variants=chosen,
            bias_options={key: value for key, value in requested.items() if key in BIAS_PARAMS},
            precision=precision,
            device=device,
            warmup=warmup,
            steps=rounds,
            threads=threads,
            seed=seed,
            clock=clock,
        )
        for window in windows
    ]
    for spec in specs:
        spec.validate()  # every window's settings before the first is timed
    meta = run_record(
        device,
        command=command,
        preset=preset,
        model=model,
        precision=precision,
        map_size=map_size,
        batch=batch,
        rounds=rounds,
        warmup=warmup,
        clock=clock,
        seed=seed,
        threads=threads if threads is not None else torch.get_num_threads(),
    )
    log(
        f"attention of WindowAttention layers, preset {preset} (dim {model['dim']}, {model['heads']} heads of "
        f"{model['dim'] // model['heads']}); {device} ({meta['device_name']}), {precision}, {rounds} interleaved "
        f"rounds after {warmup} warm-up; ratios: geometric mean of the per-round ratios [95% bootstrap interval]"
    )
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    columns = ratio_columns([bias for bias, _ in chosen])
    for spec in specs:
        window_rows = bench(spec)
        rows += window_rows
        ratios += pair_ratios(window_rows)
        log(
            f"\nwindow {spec.window} (map {spec.side}x{spec.side}, {spec.n_windows} windows of {spec.window**2} tokens)"
        )
        log(
            render(
                window_rows,
                (
                    "rank",
                    "pass",
                    "variant",
                    "backend",
                    "kernel_head_dim",
                    "status",
                    "ms_median",
                    "ms_iqr",
                    "ratio_to_none",
                    "ratio_to_none_low",
                    "ratio_to_none_high",
                    "attention_kernels",
                ),
            )
        )
        log(render(pair_ratios(window_rows), columns))
    tables.write_rows(out_dir, "attention", rows, tables.ATTENTION_COLUMNS)
    tables.write_rows(out_dir, "attention_ratios", ratios, columns)
    write_json_atomic(out_dir / "bench.json", meta)
    return [
        out_dir / name
        for name in ("attention.json", "attention.csv", "attention_ratios.json", "attention_ratios.csv", "bench.json")
    ]
