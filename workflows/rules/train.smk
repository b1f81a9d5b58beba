# Training: one `suite train` run per preset, bias and scale, from a recipe plus dotted overrides.
# final.pt is written last, so it is the target. Snakemake runs the job again when final.pt is missing
# (a run stopped early), when the recipe, an override or an input changed, or when forced (--forceall);
# `--resume-or-restart` then continues an unfinished run of the same recipe from its last checkpoint,
# and otherwise (recipe changed, or the earlier run had finished: a forced re-run) trains afresh: the old
# run's files git holds (committed results) are replaced in place, the rest moved aside inside the run
# folder (replaced/<time>/), so checkpoints of two recipes are never mixed. summary.json is flagged
# update() so that Snakemake does not delete it before the job: a forced re-run moves the old one aside
# with the rest (Snakemake deletes final.pt, so a forced re-run trains; the trainer gives back a complete
# run only where final.pt and summary.json are both still there).


rule train:
    input:
        recipe=train_recipe,
        train_data=lambda wildcards: dataset_ready(train_dataset(wildcards.model)),
        val_data=lambda wildcards: dataset_ready(config["train"]["val_dataset"]),
        init=train_init,
    output:
        final=f"{RESULTS}/train/{{model}}-x{{scale}}/final.pt",
        summary=update(f"{RESULTS}/train/{{model}}-x{{scale}}/summary.json"),
    log:
        f"{LOGS}/train/{{model}}-x{{scale}}.log",
    params:
        launcher=suite_launcher(config["train"]["resources"]["gpus"]),
        threads_per_process=lambda wildcards, threads: threads_per_process(threads),
        recipe=recipe_overrides,
        placement=placement_overrides,
    conda:
        ENV
    threads: config["train"]["resources"]["threads"]
    resources:
        mem_mb=config["train"]["resources"]["mem_mb"],
        runtime=config["train"]["resources"]["runtime"],
        gpu=config["train"]["resources"]["gpus"],
    shell:
        "OMP_NUM_THREADS={params.threads_per_process} {params.launcher} train --config {input.recipe:q} "
        "--resume-or-restart --override {params.recipe} {params.placement} > {log:q} 2>&1"
