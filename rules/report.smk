# The report: every experiment's facts gathered into variables, the run manifest, the run's own tables (manifest,
# timings), and the render of report/index.qmd (+ report/sections/*.qmd) into one self-contained HTML page
# (Quarto where installed, else pandoc from the pypandoc-binary wheel). All four are local jobs.

EXPERIMENT_FACTS = [f"results/experiments/part_a/{name}/facts.json" for name in PART_A_EXPERIMENTS] + part_b_facts()
FIGURE_DIRS = [f"results/figures/part_a/{name}" for name in PART_A_EXPERIMENTS] + part_b_figures()
REPORT_SOURCES = ["report/index.qmd", *sorted(str(p) for p in Path("report/sections").glob("*.qmd")),
                  "report/style.css", "report/template.html"]


localrules:
    report_variables,
    manifest,
    run_tables,
    report,


def manifest_config():
    """The resolved config the manifest records: everything a computed result depends on. `report` (the page's
    title) is left out so that retitling the page reruns the render only."""
    return json.dumps({key: value for key, value in config.items() if key != "report"}, sort_keys=True)


rule report_variables:
    input:
        EXPERIMENT_FACTS,
    output:
        "results/report/variables.json",
    log:
        "results/logs/report/variables.log",
    shell:
        "{DIFFLAB} report variables --facts {input} --out {output} > {log} 2>&1"


rule manifest:
    # Depends on every result so that it is written last and records when the run finished.
    input:
        EXPERIMENT_FACTS,
        FIGURE_DIRS,
    output:
        "results/manifest.json",
    params:
        config=manifest_config(),
    log:
        "results/logs/report/manifest.log",
    shell:
        "{DIFFLAB} manifest --config-json {params.config:q} --started-file results/logs/run_started_utc.txt"
        " --out {output} > {log} 2>&1"


rule run_tables:
    input:
        manifest="results/manifest.json",
    output:
        manifest="results/report/tables/manifest.md",
        timings="results/report/tables/timings.md",
    log:
        "results/logs/report/tables.log",
    shell:
        "{DIFFLAB} report tables --manifest {input.manifest} --benchmarks results/benchmarks --logs results/logs"
        " --out-dir results/report/tables > {log} 2>&1"


rule report:
    input:
        sources=REPORT_SOURCES,
        manifest="results/manifest.json",
        variables="results/report/variables.json",
        tables=rules.run_tables.output,
        figures=FIGURE_DIRS,
    output:
        "results/report/index.html",
    params:
        settings=settings_json("report.render"),
    log:
        "results/logs/report/render.log",
    shell:
        "{DIFFLAB} report render --settings {params.settings:q} --qmd report/index.qmd --manifest {input.manifest}"
        " --variables {input.variables} --out {output} > {log} 2>&1"
