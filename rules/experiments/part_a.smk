# Part A's experiments (CS180 project 5, Part A) over a Denoiser backend: one job per experiment, each writing
# results/experiments/part_a/<name>/{result.npz,facts.json} and results/metrics/part_a_<name>.csv.
# The mnist backend is the Part B class-conditioned UNet at its final epoch; deepfloyd loads results/models/deepfloyd/backend.json. Each job gets only the config keys
# its settings class (difflab.settings.part_a) reads, so e.g. part_a.cfg_scale reruns only the guided experiments.

PART_A_EXPERIMENTS = ["sampling", "forward", "blur", "one_step", "iterative", "benchmark", "samples", "cfg", "spacing",
                      "sdedit", "sdedit_inputs", "inpaint", "img2img", "anagrams", "hybrids", "hybrid_sweep",
                      "illusions"]
HYBRID_SWEEP = "results/experiments/part_a/hybrid_sweep/result.npz"


def part_a_settings(wildcards):
    return settings_json(f"part_a.{wildcards.experiment}")


def part_a_inputs(wildcards):
    if config["part_a"]["backend"] == "mnist":
        inputs = {"data": MNIST, "classifier": CLASSIFIER, "checkpoint": final_checkpoint("class")}
    else:  # deepfloyd: the backend file (rules/deepfloyd.smk); no MNIST digits, no MNIST classifier
        inputs = {"checkpoint": DEEPFLOYD_BACKEND}
    if wildcards.experiment == "inpaint":  # mask images: a changed mask file reruns the job
        inputs["masks"] = [m for m in config["part_a"]["inpaint_masks"] if isinstance(m, str)]
    if wildcards.experiment in ("hybrids", "illusions") and config["part_a"]["hybrid_sigma_choice"] == "best":
        inputs["hybrid_sweep"] = HYBRID_SWEEP  # the 1.9 sigma is the sweep's best
    return inputs


def part_a_extra_args(wildcards, input):
    return f"--hybrid-sweep {input.hybrid_sweep}" if "hybrid_sweep" in input.keys() else ""


rule part_a:
    input:
        unpack(part_a_inputs),
    output:
        result="results/experiments/part_a/{experiment}/result.npz",
        facts="results/experiments/part_a/{experiment}/facts.json",
        metrics="results/metrics/part_a_{experiment}.csv",
    wildcard_constraints:
        experiment="|".join(PART_A_EXPERIMENTS),
    params:
        settings=part_a_settings,
        out_dir="results/experiments/part_a/{experiment}",
        extra=part_a_extra_args,
        data=MNIST,
        classifier=CLASSIFIER,
    log:
        "results/logs/experiments/part_a/{experiment}.log",
    benchmark:
        "results/benchmarks/experiments/part_a/{experiment}.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} parta run {wildcards.experiment} --settings {params.settings:q} --checkpoint {input.checkpoint}"
        " --data {params.data} --classifier {params.classifier} --out-dir {params.out_dir}"
        " --metrics-out {output.metrics} {params.extra} > {log} 2>&1"
