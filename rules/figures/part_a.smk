# Part A's figures and tables, drawn from each experiment's result files only (never recomputed): a change in
# src/difflab/figures/part_a.py or grids.py reruns these jobs and the report, never an experiment.

localrules: part_a_figures


rule part_a_figures:
    input:
        result="results/experiments/part_a/{experiment}/result.npz",
        facts="results/experiments/part_a/{experiment}/facts.json",
        code=["src/difflab/figures/part_a.py", "src/difflab/figures/grids.py"],
    output:
        directory("results/figures/part_a/{experiment}"),
    wildcard_constraints:
        experiment="|".join(PART_A_EXPERIMENTS),
    log:
        "results/logs/figures/part_a/{experiment}.log",
    shell:
        "{DIFFLAB} parta figure {wildcards.experiment} --result-dir results/experiments/part_a/{wildcards.experiment}"
        " --out-dir {output} > {log} 2>&1"
