# RIB suite workflow: data -> training (RPB, RIB) -> evaluation -> profiling -> tables, figures, REPORT.md.
#   snakemake --cores all                                              # default: mini benchmark, CPU
#   snakemake --cores all --configfile workflows/config/paper.yaml     # the paper's models, GPUs
#   snakemake --cores all --configfile workflows/config/verify.yaml    # released checkpoints, no training
#   snakemake --cores all --configfile workflows/config/ablation.yaml  # tiny RIB at ranks 2..32 and no bias
#   snakemake --cores all --configfile workflows/config/biases.yaml    # tiny with every positional bias
# This file only wires; the steps are in workflows/rules/, the settings in workflows/config/.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "workflows/config/default.yaml"


validate(config, "workflows/schemas/config.schema.yaml")


report: "workflows/report/workflow.rst"


include: "workflows/rules/common.smk"
include: "workflows/rules/data.smk"


if VERIFY:

    include: "workflows/rules/verify.smk"

    rule all:
        input:
            rules.verify_report.output,
        default_target: True

else:

    include: "workflows/rules/train.smk"
    include: "workflows/rules/eval.smk"
    include: "workflows/rules/analysis.smk"

    if PROFILE_SWEEP is not None:

        include: "workflows/rules/profile.smk"

    include: "workflows/rules/report.smk"

    rule all:
        input:
            rules.report.output,
        default_target: True
