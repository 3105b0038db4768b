# difflab: "Fun with Diffusion Models" (CS180 project 5) as one DAG.
#   data -> Part B models -> Part B figures/metrics -> Part A edits -> manifest -> report
# Rules only wire files together; every computation is a `python -m difflab <verb>` in src/difflab.
# Profiles (profiles/<name>/config.yaml) choose the experiment size; see README.md.

from snakemake.utils import min_version

min_version("9.0")


# The first layer; rules/common.smk adds the profile's configfile:, then --configfile and --config (README "Profiles").
configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/part_b.smk"
include: "rules/metrics.smk"
include: "rules/part_a.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "results/report/index.html",
        # Kept checkpoints are results too: one set aside as corrupt is recomputed even when the report is current.
        [kept_checkpoint(kind, epoch) for kind in KINDS for epoch in kept_epochs(kind)],
        CLASSIFIER,
