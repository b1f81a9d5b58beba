# Report: tables, figures and REPORT.md from every result above, by `suite report`. Its outputs are those
# the report's sections declare (suite.report.sections) for what this config's results hold (REPORT_CONTENTS).


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
        **report_outputs(REPORT_CONTENTS),
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
