# Profiling: the window sweep of `suite profile sweep` (timings, memory, kernels, TensorBoard traces
# under profile/traces/); an out-of-memory point is a row with status "oom", not a failure.
# `--resume` continues an unfinished sweep (killed, or out of its time budget) and measures a finished
# one again (a forced re-run: the old points git holds are replaced in place, the rest moved aside under
# profile/replaced/).


rule profile_sweep:
    input:
        sweep=config["profile"]["sweep"],
    output:
        profile_csv=f"{RESULTS}/profile/profile.csv",
        profile_json=f"{RESULTS}/profile/profile.json",
        speedup_csv=f"{RESULTS}/profile/speedup.csv",
        attention_csv=f"{RESULTS}/profile/attention.csv",
    log:
        f"{LOGS}/profile/sweep.log",
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.profile_csv),
    conda:
        ENV
    threads: config["profile"]["resources"]["threads"]
    resources:
        mem_mb=config["profile"]["resources"]["mem_mb"],
        runtime=config["profile"]["resources"]["runtime"],
        gpu=config["profile"]["resources"]["gpus"],
    shell:
        "OMP_NUM_THREADS={threads} suite profile sweep --config {input.sweep:q} --out {params.out_dir:q} "
        "--resume > {log:q} 2>&1"
