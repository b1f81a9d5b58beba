# Evaluation: bicubic and every trained model on every test set at every scale, one JSON each. The
# report's crop (one dataset and scale) is evaluated by twin rules that also save the SR images.


rule eval_bicubic:
    input:
        data=lambda wildcards: dataset_ready(wildcards.dataset),
    output:
        json=f"{RESULTS}/eval/bicubic/{{dataset}}-x{{scale}}.json",
    log:
        f"{LOGS}/eval/bicubic/{{dataset}}-x{{scale}}.log",
    params:
        data=lambda wildcards: dataset_dir(wildcards.dataset),
        images="",
    conda:
        ENV
    threads: config["eval"]["resources"]["threads"]
    resources:
        mem_mb=config["eval"]["resources"]["mem_mb"],
        runtime=config["eval"]["resources"]["runtime"],
        gpu=0,
    shell:
        "OMP_NUM_THREADS={threads} suite eval --method bicubic --data {params.data:q} --scale {wildcards.scale} "
        "--name {wildcards.dataset} --out {output.json:q} {params.images} > {log:q} 2>&1"


use rule eval_bicubic as eval_bicubic_with_images with:
    output:
        json=f"{RESULTS}/eval/bicubic/{crop_tag()}.json",
        images=directory(f"{RESULTS}/images/bicubic/{crop_tag()}"),
    params:
        data=lambda wildcards: dataset_dir(wildcards.dataset),
        images=lambda wildcards, output: f"--save-images {shlex.quote(output.images)}",


rule eval_checkpoint:
    input:
        checkpoint=f"{RESULTS}/train/{{model}}-x{{scale}}/final.pt",
        data=lambda wildcards: dataset_ready(wildcards.dataset),
    output:
        json=f"{RESULTS}/eval/{{model}}/{{dataset}}-x{{scale}}.json",
    log:
        f"{LOGS}/eval/{{model}}/{{dataset}}-x{{scale}}.log",
    params:
        data=lambda wildcards: dataset_dir(wildcards.dataset),
        options=eval_options(),
        images="",
    conda:
        ENV
    threads: config["eval"]["resources"]["threads"]
    resources:
        mem_mb=config["eval"]["resources"]["mem_mb"],
        runtime=config["eval"]["resources"]["runtime"],
        gpu=config["eval"]["resources"]["gpus"],
    shell:
        "OMP_NUM_THREADS={threads} suite eval --checkpoint {input.checkpoint:q} --data {params.data:q} "
        "--scale {wildcards.scale} --name {wildcards.dataset} {params.options} "
        "--out {output.json:q} {params.images} > {log:q} 2>&1"


use rule eval_checkpoint as eval_checkpoint_with_images with:
    output:
        json=f"{RESULTS}/eval/{{model}}/{crop_tag()}.json",
        images=directory(f"{RESULTS}/images/{{model}}/{crop_tag()}"),
    params:
        data=lambda wildcards: dataset_dir(wildcards.dataset),
        options=eval_options(),
        images=lambda wildcards, output: f"--save-images {shlex.quote(output.images)}",


ruleorder: eval_bicubic_with_images > eval_bicubic
ruleorder: eval_checkpoint_with_images > eval_checkpoint
