# Research tools on the trained models (`suite analyze`, config `analysis`), all evaluation only: the
# positional bias each model with an N x N logit term learned, the RPB model converted to low rank
# (flash-capable), and every model evaluated at scaled windows (a bias tied to its window, RPB's table,
# refuses, and the table shows it); which models each tool runs on: analysis_outputs_by_tool in common.smk.
# The two timed tools ask for the machine's threads so that nothing runs beside their timings.


rule analyze_bias:
    input:
        checkpoint=f"{RESULTS}/train/{{model}}-x{{scale}}/final.pt",
    output:
        **analysis_tables("bias"),
        offsets=f"{RESULTS}/analysis/bias/{{model}}-x{{scale}}/offsets.png",
        centre=f"{RESULTS}/analysis/bias/{{model}}-x{{scale}}/centre.png",
    log:
        f"{LOGS}/analysis/bias/{{model}}-x{{scale}}.log",
    params:
        out=lambda wildcards, output: os.path.dirname(output.table),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=0,
    shell:
        "OMP_NUM_THREADS={threads} suite analyze bias --checkpoint {input.checkpoint:q} --out {params.out:q} "
        "> {log:q} 2>&1"


rule analyze_lowrank:
    input:
        checkpoint=f"{RESULTS}/train/{{model}}-x{{scale}}/final.pt",
        data=dataset_ready(ANALYSIS_DATASET),
    output:
        **analysis_tables("lowrank"),
    log:
        f"{LOGS}/analysis/lowrank/{{model}}-x{{scale}}.log",
    params:
        out=lambda wildcards, output: os.path.dirname(output.table),
        data=dataset_dir(ANALYSIS_DATASET),
        dataset=ANALYSIS_DATASET,
        ranks=" ".join(str(rank) for rank in ANALYSIS["lowrank_ranks"]),
        timing=analysis_timing_options(),
    conda:
        ENV
    threads: ANALYSIS["resources"]["threads"]
    resources:
        mem_mb=ANALYSIS["resources"]["mem_mb"],
        runtime=ANALYSIS["resources"]["runtime"],
        gpu=ANALYSIS["resources"]["gpus"],
    shell:
        "OMP_NUM_THREADS={threads} suite analyze lowrank --checkpoint {input.checkpoint:q} --ranks {params.ranks} "
        "--data {params.data:q} --scale {wildcards.scale} --name {params.dataset} {params.timing} "
        "--out {params.out:q} > {log:q} 2>&1"


rule analyze_windows:
    input:
        checkpoint=f"{RESULTS}/train/{{model}}-x{{scale}}/final.pt",
        data=dataset_ready(ANALYSIS_DATASET),
    output:
        **analysis_tables("windows"),
    log:
        f"{LOGS}/analysis/windows/{{model}}-x{{scale}}.log",
    params:
        out=lambda wildcards, output: os.path.dirname(output.table),
        data=dataset_dir(ANALYSIS_DATASET),
        dataset=ANALYSIS_DATASET,
        factors=" ".join(str(factor) for factor in ANALYSIS["window_factors"]),
        timing=analysis_timing_options(),
    conda:
        ENV
    threads: ANALYSIS["resources"]["threads"]
    resources:
        mem_mb=ANALYSIS["resources"]["mem_mb"],
        runtime=ANALYSIS["resources"]["runtime"],
        gpu=ANALYSIS["resources"]["gpus"],
    shell:
        "OMP_NUM_THREADS={threads} suite analyze windows --checkpoint {input.checkpoint:q} "
        "--factors {params.factors} --data {params.data:q} --scale {wildcards.scale} --name {params.dataset} "
        "{params.timing} --out {params.out:q} > {log:q} 2>&1"
