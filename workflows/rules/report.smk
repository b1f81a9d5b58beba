# Report: tables, figures and REPORT.md from every result above, by `suite report`. The speed tables and
# figures exist when the config runs a profile sweep, the analysis tables when it runs the research tools,
# the rank-ablation table and figure when it trains RIB at several ranks (train.ranks).


def report_outputs() -> dict:
    """The files `suite report` writes for this config, by name; those shown in Snakemake's HTML report
    carry their caption."""
    def shown(path: str, caption: str, category: str):
        return report(path, caption=f"../report/{caption}.rst", category=category)

    outputs = {
        "psnr_csv": shown(f"{RESULTS}/tables/psnr_ssim.csv", "psnr_ssim", "Tables"),
        "psnr_md": f"{RESULTS}/tables/psnr_ssim.md",
        "psnr_tex": f"{RESULTS}/tables/psnr_ssim.tex",
        "training_csv": shown(f"{RESULTS}/tables/training.csv", "training", "Tables"),
        "training_md": f"{RESULTS}/tables/training.md",
        "targets_md": f"{RESULTS}/tables/targets.md",
        "report_md": f"{RESULTS}/REPORT.md",
    }
    figures = ["teaser", "val_psnr", "crop"]
    if PROFILE_SWEEP is not None:
        outputs["speed_csv"] = shown(f"{RESULTS}/tables/speed.csv", "speed", "Tables")
        outputs["speed_md"] = f"{RESULTS}/tables/speed.md"
        figures += ["speedup", "latency", "memory"]
    tables = []
    if any(path.endswith("/stats.csv") for path in analysis_outputs()):
        tables.append("bias_fields")
    if any(path.endswith("/lowrank.csv") for path in analysis_outputs()):
        tables.append("lowrank")
    if any(path.endswith("/windows.csv") for path in analysis_outputs()):
        tables.append("windows")
    if RANKS:
        tables.append("rank_ablation")
        figures.append("rank_ablation")
    for name in tables:
        outputs[f"{name}_csv"] = shown(f"{RESULTS}/tables/{name}.csv", name, "Analysis")
        outputs[f"{name}_md"] = f"{RESULTS}/tables/{name}.md"
    for name in figures:
        outputs[f"{name}_png"] = shown(f"{RESULTS}/figures/{name}.png", name, "Figures")
        outputs[f"{name}_pdf"] = f"{RESULTS}/figures/{name}.pdf"
    return outputs


rule report:
    localrule: True
    input:
        evals=eval_jsons(),
        summaries=[f"{run_dir(model, scale)}/summary.json" for model in MODELS for scale in SCALES],
        profile=[rules.profile_sweep.output.profile_csv] if PROFILE_SWEEP is not None else [],
        analysis=analysis_outputs(),
        crop_images=crop_image_dirs(),
        crop_data=dataset_ready(CROP["dataset"]),
    output:
        **report_outputs(),
    log:
        f"{LOGS}/report.log",
    params:
        results=lambda wildcards, output: os.path.dirname(output.report_md),
        options=report_options(),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=0,
    shell:
        "suite report --results {params.results:q} --out {params.results:q} {params.options} > {log:q} 2>&1"
