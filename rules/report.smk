# The report: run manifest, timing table and manifest table, rendered from report/index.qmd into one
# self-contained HTML page (Quarto where installed, else pandoc from the pypandoc-binary wheel).

PART_B_SNIPPETS = [f"results/report/snippets/part_b_{name}.md" for name in ("models", "denoiser", "ood", "time", "class", "cfg", "fid")]
PART_A_SNIPPETS = expand("results/report/snippets/part_a_{experiment}.md", experiment=PART_A_EXPERIMENTS)
EXPERIMENT_SNIPPETS = PART_B_SNIPPETS + PART_A_SNIPPETS


rule manifest:
    # Depends on every experiment so that it is written last and records when the run finished.
    input:
        EXPERIMENT_SNIPPETS,
    output:
        "results/manifest.json",
    params:
        config=json.dumps(config, sort_keys=True),
    log:
        "results/logs/report/manifest.log",
    shell:
        "{DIFFLAB} manifest --config-json {params.config:q} --started-file results/logs/run_started_utc.txt"
        " --out {output} > {log} 2>&1"


rule report_snippets:
    input:
        manifest="results/manifest.json",
    output:
        manifest="results/report/snippets/manifest.md",
        timings="results/report/snippets/timings.md",
    log:
        "results/logs/report/snippets.log",
    shell:
        "{DIFFLAB} report snippets --manifest {input.manifest} --benchmarks results/benchmarks"
        " --out-dir results/report/snippets > {log} 2>&1"


rule report:
    input:
        qmd="report/index.qmd",
        css="report/style.css",
        template="report/template.html",
        manifest="results/manifest.json",
        snippets=EXPERIMENT_SNIPPETS + rules.report_snippets.output,
    output:
        "results/report/index.html",
    log:
        "results/logs/report/render.log",
    shell:
        "{DIFFLAB} report render --qmd {input.qmd} --manifest {input.manifest} --out {output} > {log} 2>&1"
        " && echo 'difflab: report written to {output}'"
