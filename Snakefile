# difflab: "Fun with Diffusion Models" (CS180 project 5) as one DAG, one file of rules per stage:
#   data -> models -> samples -> metrics -> experiments -> figures -> report
# Rules only wire files together and pass each job exactly the config keys it reads (difflab.settings); every
# computation is a `python -m difflab <verb>` in src/difflab. Profiles (profiles/<name>/) choose the experiment
# size; see README.md.

from snakemake.utils import min_version

min_version("9.0")


# --- load configuration ---------------------------------------------------------------------------------------

# The first layer; rules/common.smk adds the profile's configfile:, then --configfile and --config (README "Profiles").
configfile: "config/config.yaml"


include: "rules/common.smk"


# --- load rules, by stage -------------------------------------------------------------------------------------


include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/deepfloyd.smk"
include: "rules/samples.smk"
include: "rules/metrics.smk"
include: "rules/experiments/part_a.smk"
include: "rules/experiments/part_b.smk"
include: "rules/figures/part_a.smk"
include: "rules/figures/part_b.smk"
include: "rules/report.smk"


# --- messages -------------------------------------------------------------------------------------------------


onsuccess:
    stop_jobserver()
    if Path("results/report/index.html").exists():
        print("difflab: report written to results/report/index.html")


onerror:
    stop_jobserver()


# --- target rules ---------------------------------------------------------------------------------------------


rule all:
    default_target: True
    input:
        "results/report/index.html",
        # Kept checkpoints are results too: one set aside as corrupt is recomputed even when the report is current.
        [kept_checkpoint(kind, epoch) for kind in KINDS for epoch in kept_epochs(kind)],
        CLASSIFIER,
