"""Training engine: YAML recipes (`config`), the run folder's lock and start modes (`rundir`), the loop
(`trainer`), RNG states (`rng`), LR schedules, the sample order (`sampler`), DDP helpers
(`distributed`) and run logs (`monitor`). The checkpoint format is suite.checkpoint.

Submodules are imported where used, so `import suite.train` stays cheap (no torch).
"""

# summary.json's fields, in the order the trainer writes them: readers (the report) use this list.
SUMMARY_FIELDS = (
    "name",
    "iterations",
    "median_step_time_s",
    "mean_step_time_s",
    "wall_time_s",
    "params",
    "device",
    "precision",
    "compile",
    "seed",
    "threads",
    "world_size",
    "global_batch",
    "lr_patch",
    "model",
    "val_psnr",
    "val_ssim",
    "config_hash",
    "provenance",
)
