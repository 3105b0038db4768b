# Part B experiments: each job reads trained checkpoints (or metric CSVs) and writes
# results/experiments/part_b/<name>/{result.npz,facts.json} and results/metrics/part_b_<name>.csv.
# Each job gets only its own config keys (settings_json("part_b.<name>")), so a changed key reruns only the
# jobs that read it: gif_frames -> part_b_gif only, blur_holdout -> part_b_ood only.

PART_B_EXPERIMENTS = ["denoiser", "ood", "time_grids", "class_grids", "time_gif", "class_gif", "cfg", "cfg_tradeoff", "fid", "ema", "models", "time_steps", "class_steps", "steps"]


def part_b_facts():
    """The facts.json of every Part B experiment (inputs of the report)."""
    return [f"results/experiments/part_b/{name}/facts.json" for name in PART_B_EXPERIMENTS]


def part_b_ddpm_settings(wildcards):
    return settings_json(f"part_b.{wildcards.ddpm}_grids")


def part_b_gif_settings(wildcards):
    return settings_json(f"part_b.{wildcards.ddpm}_gif")


def part_b_ddpm_checkpoints(wildcards):
    return [kept_checkpoint(wildcards.ddpm, e) for e in kept_epochs(wildcards.ddpm)]


def part_b_final_ddpm(wildcards):
    return final_checkpoint(wildcards.ddpm)


# Input functions, evaluated when the DAG is built, so these helpers of the metrics stage may be defined in a
# file included after this one.
def part_b_fid_metrics(wildcards):
    """The FID CSVs per evaluation epoch, the floor and the classifier's accuracy."""
    return fid_tables()


def part_b_ema_metrics(wildcards):
    """The FID CSVs of raw and EMA weights per evaluation epoch of both DDPMs."""
    return ema_fid_tables()


def part_b_cfg_metrics(wildcards):
    """The FID CSVs of the guidance sweep."""
    return expand("results/metrics/fid/cfg_guidance_{guidance}.csv", guidance=CFG_SCALES)


def part_b_classifier(wildcards):
    return CLASSIFIER


localrules: part_b_cfg_tradeoff, part_b_fid, part_b_steps_summary, part_b_ema


rule part_b_denoiser:
    input:
        data=MNIST,
        checkpoints=[kept_checkpoint("denoiser", e) for e in kept_epochs("denoiser")],
    output:
        result="results/experiments/part_b/denoiser/result.npz",
        facts="results/experiments/part_b/denoiser/facts.json",
        metrics="results/metrics/part_b_denoiser.csv",
    params:
        settings=settings_json("part_b.denoiser"),
    log:
        "results/logs/experiments/part_b_denoiser.log",
    benchmark:
        "results/benchmarks/experiments/part_b_denoiser.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} partb run denoiser --settings {params.settings:q} --data {input.data} --checkpoints {input.checkpoints}"
        " --out-dir results/experiments/part_b/denoiser --metrics-out {output.metrics} > {log} 2>&1"


rule part_b_ood:
    input:
        data=MNIST,
        denoiser=final_checkpoint("denoiser"),
        time_model=final_checkpoint("time"),
    output:
        result="results/experiments/part_b/ood/result.npz",
        facts="results/experiments/part_b/ood/facts.json",
        metrics="results/metrics/part_b_ood.csv",
    params:
        settings=settings_json("part_b.ood"),
    log:
        "results/logs/experiments/part_b_ood.log",
    benchmark:
        "results/benchmarks/experiments/part_b_ood.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} partb run ood --settings {params.settings:q} --data {input.data} --denoiser {input.denoiser}"
        " --time-model {input.time_model} --out-dir results/experiments/part_b/ood --metrics-out {output.metrics} > {log} 2>&1"


rule part_b_grids:
    wildcard_constraints:
        ddpm="time|class",
    input:
        checkpoints=part_b_ddpm_checkpoints,
    output:
        result="results/experiments/part_b/{ddpm}_grids/result.npz",
        facts="results/experiments/part_b/{ddpm}_grids/facts.json",
        metrics="results/metrics/part_b_{ddpm}_grids.csv",
    params:
        settings=part_b_ddpm_settings,
    log:
        "results/logs/experiments/part_b_{ddpm}_grids.log",
    benchmark:
        "results/benchmarks/experiments/part_b_{ddpm}_grids.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} partb run {wildcards.ddpm}_grids --settings {params.settings:q} --checkpoints {input.checkpoints}"
        " --out-dir results/experiments/part_b/{wildcards.ddpm}_grids --metrics-out {output.metrics} > {log} 2>&1"


rule part_b_gif:
    wildcard_constraints:
        ddpm="time|class",
    input:
        checkpoint=part_b_final_ddpm,
    output:
        result="results/experiments/part_b/{ddpm}_gif/result.npz",
        facts="results/experiments/part_b/{ddpm}_gif/facts.json",
        metrics="results/metrics/part_b_{ddpm}_gif.csv",
    params:
        settings=part_b_gif_settings,
    log:
        "results/logs/experiments/part_b_{ddpm}_gif.log",
    benchmark:
        "results/benchmarks/experiments/part_b_{ddpm}_gif.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} partb run {wildcards.ddpm}_gif --settings {params.settings:q} --checkpoint {input.checkpoint}"
        " --out-dir results/experiments/part_b/{wildcards.ddpm}_gif --metrics-out {output.metrics} > {log} 2>&1"


rule part_b_cfg:
    input:
        checkpoint=final_checkpoint("class"),
    output:
        result="results/experiments/part_b/cfg/result.npz",
        facts="results/experiments/part_b/cfg/facts.json",
        metrics="results/metrics/part_b_cfg.csv",
    params:
        settings=settings_json("part_b.cfg"),
    log:
        "results/logs/experiments/part_b_cfg.log",
    benchmark:
        "results/benchmarks/experiments/part_b_cfg.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} partb run cfg --settings {params.settings:q} --checkpoint {input.checkpoint}"
        " --out-dir results/experiments/part_b/cfg --metrics-out {output.metrics} > {log} 2>&1"


rule part_b_cfg_tradeoff:
    input:
        metrics=part_b_cfg_metrics,
    output:
        result="results/experiments/part_b/cfg_tradeoff/result.npz",
        facts="results/experiments/part_b/cfg_tradeoff/facts.json",
        metrics="results/metrics/part_b_cfg_tradeoff.csv",
    params:
        settings=settings_json("part_b.cfg_tradeoff"),
    log:
        "results/logs/experiments/part_b_cfg_tradeoff.log",
    benchmark:
        "results/benchmarks/experiments/part_b_cfg_tradeoff.tsv"
    threads: 1
    shell:
        "{DIFFLAB} partb run cfg_tradeoff --settings {params.settings:q} --metrics {input.metrics}"
        " --out-dir results/experiments/part_b/cfg_tradeoff --metrics-out {output.metrics} > {log} 2>&1"


rule part_b_fid:
    input:
        metrics=part_b_fid_metrics,
    output:
        result="results/experiments/part_b/fid/result.npz",
        facts="results/experiments/part_b/fid/facts.json",
        metrics="results/metrics/part_b_fid.csv",
    params:
        settings=settings_json("part_b.fid"),
    log:
        "results/logs/experiments/part_b_fid.log",
    benchmark:
        "results/benchmarks/experiments/part_b_fid.tsv"
    threads: 1
    shell:
        "{DIFFLAB} partb run fid --settings {params.settings:q} --metrics {input.metrics}"
        " --out-dir results/experiments/part_b/fid --metrics-out {output.metrics} > {log} 2>&1"


rule part_b_ema:
    input:
        metrics=part_b_ema_metrics,
    output:
        result="results/experiments/part_b/ema/result.npz",
        facts="results/experiments/part_b/ema/facts.json",
        metrics="results/metrics/part_b_ema.csv",
    params:
        settings=settings_json("part_b.ema"),
    log:
        "results/logs/experiments/part_b_ema.log",
    benchmark:
        "results/benchmarks/experiments/part_b_ema.tsv"
    threads: 1
    shell:
        "{DIFFLAB} partb run ema --settings {params.settings:q} --metrics {input.metrics}"
        " --out-dir results/experiments/part_b/ema --metrics-out {output.metrics} > {log} 2>&1"


rule part_b_models:
    input:
        checkpoints=[final_checkpoint(kind) for kind in KINDS],
        classifier=part_b_classifier,
    output:
        result="results/experiments/part_b/models/result.npz",
        facts="results/experiments/part_b/models/facts.json",
        metrics="results/metrics/part_b_models.csv",
    params:
        settings=settings_json("part_b.models"),
    log:
        "results/logs/experiments/part_b_models.log",
    benchmark:
        "results/benchmarks/experiments/part_b_models.tsv"
    threads: 1
    shell:
        "{DIFFLAB} partb run models --settings {params.settings:q} --checkpoints {input.checkpoints}"
        " --classifier {input.classifier} --out-dir results/experiments/part_b/models --metrics-out {output.metrics} > {log} 2>&1"


# Quality against sampling steps (issue 15): strided DDPM and DDIM per step count on each final DDPM, then one
# summary of both (table, plot and the report's facts).
def part_b_steps_settings(wildcards):
    return settings_json(f"part_b.{wildcards.ddpm}_steps")


rule part_b_steps:
    wildcard_constraints:
        ddpm="time|class",
    input:
        data=MNIST,
        checkpoint=part_b_final_ddpm,
        classifier=part_b_classifier,
    output:
        result="results/experiments/part_b/{ddpm}_steps/result.npz",
        facts="results/experiments/part_b/{ddpm}_steps/facts.json",
        metrics="results/metrics/part_b_{ddpm}_steps.csv",
    params:
        settings=part_b_steps_settings,
    log:
        "results/logs/experiments/part_b_{ddpm}_steps.log",
    benchmark:
        "results/benchmarks/experiments/part_b_{ddpm}_steps.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} partb run {wildcards.ddpm}_steps --settings {params.settings:q} --checkpoint {input.checkpoint}"
        " --data {input.data} --classifier {input.classifier} --out-dir results/experiments/part_b/{wildcards.ddpm}_steps"
        " --metrics-out {output.metrics} > {log} 2>&1"


rule part_b_steps_summary:
    input:
        metrics=["results/metrics/part_b_time_steps.csv", "results/metrics/part_b_class_steps.csv"],
        results=["results/experiments/part_b/time_steps/result.npz", "results/experiments/part_b/class_steps/result.npz"],
    output:
        result="results/experiments/part_b/steps/result.npz",
        facts="results/experiments/part_b/steps/facts.json",
        metrics="results/metrics/part_b_steps.csv",
    params:
        settings=settings_json("part_b.steps"),
    log:
        "results/logs/experiments/part_b_steps.log",
    benchmark:
        "results/benchmarks/experiments/part_b_steps.tsv"
    threads: 1
    shell:
        "{DIFFLAB} partb run steps --settings {params.settings:q} --metrics {input.metrics} --results {input.results}"
        " --out-dir results/experiments/part_b/steps --metrics-out {output.metrics} > {log} 2>&1"
