# Released-model verification (config `verify`): fetch each listed checkpoint with the suite's download
# code (resume, checksum lock, offline message naming the file), evaluate it without training at its
# released scale on every verify dataset that has a source (SKIPPED: named in the report), and write the
# measured / paper / difference table.


rule verify_fetch_checkpoint:
    localrule: True
    output:
        checkpoint=f"{DATA_ROOT}/released/{{released}}{{suffix,{checkpoint_suffix_pattern()}}}",
    log:
        f"{LOGS}/verify/fetch-{{released}}{{suffix}}.log",
    params:
        source=lambda wildcards: released_source(wildcards.released),
        sha256=lambda wildcards: released_sha256_option(wildcards.released),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
        gpu=0,
    shell:
        "suite data fetch-file {params.source:q} --out {output.checkpoint:q} {params.sha256} > {log:q} 2>&1"


rule verify_eval:
    input:
        checkpoint=lambda wildcards: released_checkpoint(wildcards.released),
        data=lambda wildcards: dataset_ready(wildcards.dataset),
    output:
        json=f"{RESULTS}/eval/{{released}}/{{dataset}}-x{{scale}}.json",
    log:
        f"{LOGS}/eval/{{released}}/{{dataset}}-x{{scale}}.log",
    params:
        data=lambda wildcards: dataset_dir(wildcards.dataset),
        model=lambda wildcards: released_model_options(wildcards.released),
        options=eval_options(),
    conda:
        ENV
    threads: config["verify"]["resources"]["threads"]
    resources:
        mem_mb=config["verify"]["resources"]["mem_mb"],
        runtime=config["verify"]["resources"]["runtime"],
        gpu=config["verify"]["resources"]["gpus"],
    shell:
        "OMP_NUM_THREADS={threads} suite eval --checkpoint {input.checkpoint:q} {params.model} "
        "--data {params.data:q} --scale {wildcards.scale} --name {wildcards.dataset} {params.options} "
        "--out {output.json:q} > {log:q} 2>&1"


rule verify_report:
    localrule: True
    input:
        evals=verify_jsons(),
    output:
        **report_outputs(VERIFY_CONTENTS),
    log:
        f"{LOGS}/report.log",
    params:
        results=lambda wildcards, output: os.path.dirname(output.report_md),
        title=NAME,
        paper=verify_paper_options(),
        skipped=skipped_option(),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=0,
    shell:
        "suite report --results {params.results:q} --out {params.results:q} --title {params.title:q} {params.paper} "
        "{params.skipped} > {log:q} 2>&1"
