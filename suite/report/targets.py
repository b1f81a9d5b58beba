"""Section "Targets": the checks of the former smoke benchmark, for every preset and scale trained with both
RPB and RIB."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from suite.report.declare import Built, ReportInputs, Section, Table
from suite.report.differences import interval_text, method_note, over_text, psnr_difference, seed_groups
from suite.report.markdown import markdown_table
from suite.report.readers import EvalResult, TrainRun, method_key
from suite.stats import LEVEL, Interval, unpaired_ratio

MIN_SPEEDUP = 2.0  # RIB's training step at least this much faster than RPB's at the preset's window
MAX_PSNR_DROP_DB = 0.1  # RIB's PSNR at most this far below RPB's
MIN_MARGIN_DB = 0.1  # both above bicubic by more than this

PASS, FAIL, UNRESOLVED = "PASS", "FAIL", "NOT RESOLVED"


@dataclass(frozen=True)
class Target:
    check: str
    result: str  # PASS: the whole interval meets the target; FAIL: none of it does; NOT RESOLVED: it straddles
    measured: str
    sources: tuple[str, ...]
    interval: Interval | None = None

    @property
    def passed(self) -> bool:
        return self.result == PASS


def at_least(interval: Interval | None, bound: float, point: float) -> str:
    """The result of "value >= bound" from the interval (from the point value where there is none)."""
    if interval is None:
        return PASS if point >= bound else FAIL
    if interval.low >= bound:
        return PASS
    return FAIL if interval.high < bound else UNRESOLVED


def _step_ratio(rpb: list[TrainRun], rib: list[TrainRun]) -> tuple[float, Interval | None]:
    """RPB's median step over RIB's (every seed's logged steps pooled), with its unpaired interval."""
    steps = [[t for run in runs for t in run.step_times] for runs in (rpb, rib)]
    if all(steps):
        interval = unpaired_ratio(*steps)
        return interval.mean, interval
    medians = [statistics.median(run.summary["median_step_time_s"] for run in runs) for runs in (rpb, rib)]
    return medians[0] / medians[1], None


def targets(evals: list[EvalResult], runs: list[TrainRun]) -> list[Target]:
    """The smoke benchmark's checks, for every preset and scale trained with both RPB and RIB: the
    training step ratio from the runs' logged steps, PSNR on every test set both were evaluated on; each
    decided by its interval (over test images, and seeds where there are several)."""
    found = []
    runs = [run for run in runs if run.rank is None]  # the rank ablation's runs have no RPB twin
    by_key: dict[tuple, list[TrainRun]] = {}
    for run in runs:
        by_key.setdefault((run.preset, run.scale, run.bias), []).append(run)
    groups = seed_groups(evals)
    for preset, scale in sorted(
        {(run.preset, run.scale) for run in runs}, key=lambda k: (method_key(f"{k[0]}-rib"), k[1])
    ):
        rpb, rib = by_key.get((preset, scale, "rpb")), by_key.get((preset, scale, "rib"))
        if rpb is None or rib is None:
            continue
        speedup, interval = _step_ratio(rpb, rib)
        window = rib[0].window
        seeds = f", {len(rib)} seeds pooled" if len(rib) > 1 else ""
        found.append(
            Target(
                f"{preset} x{scale}: RIB training step >= {MIN_SPEEDUP:g}x faster than RPB"
                + (f" at the preset's {window}x{window} window" if window else ""),
                at_least(interval, MIN_SPEEDUP, speedup),
                (interval_text(interval, 2, "x") if interval else f"{speedup:.2f}x")
                + f" (RPB / RIB median step{seeds})",
                tuple(str(run.path / "train_log.csv") for run in (*rpb, *rib)),
                interval,
            )
        )
        for dataset in sorted({d for (m, d, s) in groups if m == f"{preset}-rib" and s == scale}):
            rpb_evals = groups.get((f"{preset}-rpb", dataset, scale))
            rib_evals = groups[(f"{preset}-rib", dataset, scale)]
            if rpb_evals is None:
                continue
            change = psnr_difference(rib_evals, rpb_evals)
            point = statistics.mean(r.psnr for r in rib_evals) - statistics.mean(r.psnr for r in rpb_evals)
            found.append(
                Target(
                    f"{preset} x{scale} {dataset}: RIB PSNR at most {MAX_PSNR_DROP_DB:g} dB below RPB",
                    at_least(change, -MAX_PSNR_DROP_DB, point),
                    f"RIB - RPB = {interval_text(change) if change else f'{point:+.3f} dB'}",
                    tuple(str(r.path) for r in (*rpb_evals, *rib_evals)),
                    change,
                )
            )
            bicubic = groups.get(("bicubic", dataset, scale))
            if bicubic is None:
                continue
            for label, scored in (("RPB", rpb_evals), ("RIB", rib_evals)):
                margin = psnr_difference(scored, bicubic)
                point = statistics.mean(r.psnr for r in scored) - bicubic[0].psnr
                found.append(
                    Target(
                        f"{preset} x{scale} {dataset}: {label} above bicubic by more than {MIN_MARGIN_DB:g} dB",
                        at_least(margin, MIN_MARGIN_DB, point),
                        interval_text(margin) if margin else f"{point:+.3f} dB",
                        tuple(str(r.path) for r in (*scored, *bicubic)),
                        margin,
                    )
                )
    return found


def targets_markdown(found: list[Target]) -> str:
    if not found:
        return (
            "No targets checked: they need a preset trained with both RPB and RIB at one scale "
            "(train/<preset>-rpb-x<s>, train/<preset>-rib-x<s>).\n"
        )
    rows = [[t.result, t.check, t.measured] for t in found]
    counts = {result: sum(t.result == result for t in found) for result in (PASS, FAIL, UNRESOLVED)}
    verdict = ", ".join(f"{n} {result}" for result, n in counts.items() if n)
    ratios = [t.interval for t in found if t.interval is not None and t.interval.null == 1.0]
    ratio_note = (
        f" Step ratios: {ratios[0].method()}; the two sides trained one after the other, so the interval does "
        f"not hold what changed on the machine between them."
        if ratios
        else ""
    )
    return (
        f"The checks of the former smoke benchmark ({verdict}), each decided by its {LEVEL:.0%} interval, not its "
        f"point value: PASS where the whole interval meets the target, FAIL where none of it does, NOT RESOLVED "
        f"where it straddles the target (the run is too small to tell). Training step time from the runs' logged "
        f"steps (train_log.csv), PSNR from the evaluations.\n\n"
        + markdown_table(["Result", "Check", "Measured [95% interval]"], rows)
        + "\n"
        + method_note(over_text(t.interval) for t in found if t.interval is not None and t.interval.null == 0.0)
        + ratio_note
        + "\n"
    )


def build(inputs: ReportInputs) -> Built:
    markdown = targets_markdown(targets(inputs.evals, inputs.runs))
    return Built(markdown, {"targets.md": markdown})


SECTION = Section(
    key="targets",
    title="Targets",
    build=build,
    tables=(
        Table(
            "targets",
            "The smoke benchmark's checks (RIB against RPB: training step ratio, PSNR drop, margin "
            "over bicubic) with the measured values.",
            ("md",),
        ),
    ),
)
