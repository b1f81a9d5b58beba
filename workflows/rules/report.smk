# Report: tables, figures and REPORT.md from every result above, by `suite report`. The speed tables and
# figures exist when the config runs a profile sweep, the analysis tables when it runs the research tools,
# the rank-ablation table and figure when it trains RIB at several ranks (train.ranks), the comparison of
# positional biases (table and figure) when it trains two biases or more.


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
