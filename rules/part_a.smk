# Part A: the editing toolkit (sampling, denoising, CFG, SDEdit, inpainting, anagrams, hybrids) over a
# Denoiser backend. The mnist backend is the Part B class-conditioned UNet at its final epoch.

PART_A_FIGURES = ["sampling", "forward", "blur", "one_step", "iterative", "samples", "cfg",
                  "sdedit", "sdedit_inputs", "inpaint", "img2img", "anagrams", "hybrids"]
PART_A_MEASURED = ["benchmark", "illusions"]
PART_A_EXPERIMENTS = PART_A_FIGURES + PART_A_MEASURED


def part_a_inputs(wildcards):
    inputs = {"data": MNIST, "classifier": CLASSIFIER}
    if PA["backend"] == "mnist":
        inputs["checkpoint"] = final_checkpoint("class")
    if wildcards.experiment == "inpaint":  # mask images: a changed mask reruns the job
        inputs["masks"] = [m for m in PA["inpaint_masks"] if isinstance(m, str)]
    return inputs


rule part_a:
    input:
        unpack(part_a_inputs),
    output:
        snippet="results/report/snippets/part_a_{experiment}.md",
        figures=directory("results/part_a/{experiment}"),
    wildcard_constraints:
        experiment="|".join(PART_A_FIGURES),
    params:
        settings=settings_json(PA),
    log:
        "results/logs/part_a/{experiment}.log",
    benchmark:
        "results/benchmarks/part_a/{experiment}.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} parta {wildcards.experiment} --checkpoint {input.checkpoint} --classifier {input.classifier}"
        " --data {input.data} --settings {params.settings:q} --out-dir {output.figures}"
        " --snippet {output.snippet} 2>&1 | tee {log}"


rule part_a_measured:
    input:
        unpack(part_a_inputs),
    output:
        snippet="results/report/snippets/part_a_{experiment}.md",
        figures=directory("results/part_a/{experiment}"),
        metrics="results/metrics/part_a_{experiment}.csv",
    wildcard_constraints:
        experiment="|".join(PART_A_MEASURED),
    params:
        settings=settings_json(PA),
    log:
        "results/logs/part_a/{experiment}.log",
    benchmark:
        "results/benchmarks/part_a/{experiment}.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{DIFFLAB} parta {wildcards.experiment} --checkpoint {input.checkpoint} --classifier {input.classifier}"
        " --data {input.data} --settings {params.settings:q} --out-dir {output.figures}"
        " --snippet {output.snippet} --metrics-out {output.metrics} 2>&1 | tee {log}"
