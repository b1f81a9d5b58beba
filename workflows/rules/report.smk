# Report: tables, figures and REPORT.md from every result above, by `suite report`.


rule report:
    localrule: True
    input:
        evals=eval_jsons(),
        summaries=[f"{run_dir(model, scale)}/summary.json" for model in MODELS for scale in SCALES],
        profile=rules.profile_sweep.output.profile_csv,
        crop_images=crop_image_dirs(),
        crop_data=dataset_ready(CROP["dataset"]),
    output:
        psnr_csv=report(f"{RESULTS}/tables/psnr_ssim.csv", caption="../report/psnr_ssim.rst", category="Tables"),
        psnr_md=f"{RESULTS}/tables/psnr_ssim.md",
        psnr_tex=f"{RESULTS}/tables/psnr_ssim.tex",
        speed_csv=report(f"{RESULTS}/tables/speed.csv", caption="../report/speed.rst", category="Tables"),
        speed_md=f"{RESULTS}/tables/speed.md",
        training_csv=report(f"{RESULTS}/tables/training.csv", caption="../report/training.rst", category="Tables"),
        training_md=f"{RESULTS}/tables/training.md",
        targets_md=f"{RESULTS}/tables/targets.md",
        teaser_png=report(f"{RESULTS}/figures/teaser.png", caption="../report/teaser.rst", category="Figures"),
        teaser_pdf=f"{RESULTS}/figures/teaser.pdf",
        speedup_png=report(f"{RESULTS}/figures/speedup.png", caption="../report/speedup.rst", category="Figures"),
        speedup_pdf=f"{RESULTS}/figures/speedup.pdf",
        latency_png=report(f"{RESULTS}/figures/latency.png", caption="../report/latency.rst", category="Figures"),
        latency_pdf=f"{RESULTS}/figures/latency.pdf",
        memory_png=report(f"{RESULTS}/figures/memory.png", caption="../report/memory.rst", category="Figures"),
        memory_pdf=f"{RESULTS}/figures/memory.pdf",
        val_psnr_png=report(f"{RESULTS}/figures/val_psnr.png", caption="../report/val_psnr.rst", category="Figures"),
        val_psnr_pdf=f"{RESULTS}/figures/val_psnr.pdf",
        crop_png=report(f"{RESULTS}/figures/crop.png", caption="../report/crop.rst", category="Figures"),
        crop_pdf=f"{RESULTS}/figures/crop.pdf",
        report_md=f"{RESULTS}/REPORT.md",
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
