# Part B figures: drawn from each experiment's result.npz by difflab.figures.part_b (no torch, no recomputing).
# The figure modules are inputs, so a plot-style change reruns these jobs (and the report) only.


def part_b_figures():
    """The figure folders of every Part B experiment (inputs of the report)."""
    return [f"results/figures/part_b/{name}" for name in PART_B_EXPERIMENTS]


localrules: part_b_figure


rule part_b_figure:
    wildcard_constraints:
        part_b_experiment="|".join(PART_B_EXPERIMENTS),
    input:
        result="results/experiments/part_b/{part_b_experiment}/result.npz",
        code=["src/difflab/figures/part_b.py", "src/difflab/figures/part_b_steps.py", "src/difflab/figures/grids.py"],
    output:
        directory("results/figures/part_b/{part_b_experiment}"),
    log:
        "results/logs/figures/part_b_{part_b_experiment}.log",
    shell:
        "{DIFFLAB} partb figure {wildcards.part_b_experiment} --result-dir results/experiments/part_b/{wildcards.part_b_experiment}"
        " --out-dir {output} > {log} 2>&1"
