# Datasets: build the embedded mini benchmark, or fetch an archive, into data_root. A flag file under
# data_root/.ready/ marks each as complete; datasets used as found have no rule.


rule data_mini:
    localrule: True
    output:
        touch(f"{DATA_ROOT}/.ready/mini.done"),
    log:
        f"{LOGS}/data/mini.log",
    params:
        root=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
        gpu=0,
    shell:
        "suite data mini --root {params.root:q} > {log:q} 2>&1"


rule data_fetch:
    localrule: True
    output:
        touch(f"{DATA_ROOT}/.ready/fetch-{{archive}}.done"),
    log:
        f"{LOGS}/data/fetch-{{archive}}.log",
    params:
        root=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        url=lambda wildcards: fetch_url_option(wildcards.archive),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=720,
        gpu=0,
    shell:
        "suite data fetch {wildcards.archive:q} --root {params.root:q} {params.url} > {log:q} 2>&1"
