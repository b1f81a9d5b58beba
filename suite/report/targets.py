"""Section "Targets": the checks of the former smoke benchmark, for every preset and scale trained with both
RPB and RIB."""

from __future__ import annotations

from dataclasses import dataclass

from suite.report.declare import Built, ReportInputs, Section, Table
from suite.report.markdown import markdown_table
from suite.report.readers import EvalResult, TrainRun, method_key

MIN_SPEEDUP = 2.0  # RIB's training step at least this much faster than RPB's at the preset's window
MAX_PSNR_DROP_DB = 0.1  # RIB's PSNR at most this far below RPB's
MIN_MARGIN_DB = 0.1  # both above bicubic by more than this


@dataclass(frozen=True)
class Target:
    check: str
    passed: bool
    measured: str
    sources: tuple[str, ...]


def targets(evals: list[EvalResult], runs: list[TrainRun]) -> list[Target]:
    """The smoke benchmark's checks, for every preset and scale trained with both RPB and RIB: the
    training step ratio from the runs' summaries, PSNR on every test set both were evaluated on."""
    found = []
    runs = [run for run in runs if run.rank is None]  # the rank ablation's runs have no RPB twin
    by_key = {(run.preset, run.scale, run.bias): run for run in runs}
    for preset, scale in sorted(
        {(run.preset, run.scale) for run in runs}, key=lambda k: (method_key(f"{k[0]}-rib"), k[1])
    ):
        rpb, rib = by_key.get((preset, scale, "rpb")), by_key.get((preset, scale, "rib"))
        if rpb is None or rib is None:
            continue
        speedup = rpb.summary["median_step_time_s"] / rib.summary["median_step_time_s"]
        window = rib.window
        found.append(
            Target(
                f"{preset} x{scale}: RIB training step >= {MIN_SPEEDUP:g}x faster than RPB"
                + (f" at the preset's {window}x{window} window" if window else ""),
                speedup >= MIN_SPEEDUP,
                f"{speedup:.2f}x (median step {rpb.summary['median_step_time_s']:.4f} s / "
                f"{rib.summary['median_step_time_s']:.4f} s)",
                (str(rpb.path / "summary.json"), str(rib.path / "summary.json")),
            )
        )
        scored = {(r.method, r.dataset): r for r in evals if r.scale == scale}
        for dataset in sorted({d for (m, d) in scored if m == f"{preset}-rib"}):
            pair = scored.get((f"{preset}-rpb", dataset)), scored.get((f"{preset}-rib", dataset))
            bicubic = scored.get(("bicubic", dataset))
            if pair[0] is None:
                continue
            rpb_eval, rib_eval = pair
            drop = rpb_eval.psnr - rib_eval.psnr
            found.append(
                Target(
                    f"{preset} x{scale} {dataset}: RIB PSNR at most {MAX_PSNR_DROP_DB:g} dB below RPB",
                    drop <= MAX_PSNR_DROP_DB,
                    f"RIB - RPB = {-drop:+.3f} dB",
                    (str(rpb_eval.path), str(rib_eval.path)),
                )
            )
            if bicubic is None:
                continue
            for label, result in (("RPB", rpb_eval), ("RIB", rib_eval)):
                margin = result.psnr - bicubic.psnr
                found.append(
                    Target(
                        f"{preset} x{scale} {dataset}: {label} above bicubic by more than {MIN_MARGIN_DB:g} dB",
                        margin > MIN_MARGIN_DB,
                        f"{margin:+.3f} dB",
                        (str(result.path), str(bicubic.path)),
                    )
                )
    return found


def targets_markdown(found: list[Target]) -> str:
    if not found:
        return (
            "No targets checked: they need a preset trained with both RPB and RIB at one scale "
            "(train/<preset>-rpb-x<s>, train/<preset>-rib-x<s>).\n"
        )
    rows = [["PASS" if t.passed else "FAIL", t.check, t.measured] for t in found]
    verdict = "all pass" if all(t.passed for t in found) else f"{sum(not t.passed for t in found)} FAIL"
    return (
        f"The checks of the former smoke benchmark ({verdict}): training step time from the runs' "
        f"summaries (median over the iterations), PSNR from the evaluations.\n\n"
        + markdown_table(["Result", "Check", "Measured"], rows)
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
