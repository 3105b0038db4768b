"""The report stage: facts -> variables, the run's own tables, and the render of report/index.qmd to one
self-contained HTML page (markdown.py: source text; page.py: frame and self-containment; render.py: Quarto or
pandoc; facts.py: variables; run_tables.py: manifest and timings)."""
