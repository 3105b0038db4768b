"""`difflab report <action>`: the report stage.

    python -m difflab report variables --facts results/experiments/*/*/facts.json --out results/report/variables.json
    python -m difflab report tables --manifest results/manifest.json --benchmarks results/benchmarks --logs results/logs \
        --out-dir results/report/tables
    python -m difflab report render --settings '{"title": ...}' --qmd report/index.qmd \
        --manifest results/manifest.json --variables results/report/variables.json --out results/report/index.html
"""

from __future__ import annotations

import argparse

from difflab.io import read_json


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="difflab report", description="Gather variables, write the run tables, render the report.")
    sub = parser.add_subparsers(dest="action", required=True)

    variables = sub.add_parser("variables", help="gather every experiment's facts.json into one variables file")
    variables.add_argument("--facts", nargs="*", default=[], help="facts.json files of the experiments")
    variables.add_argument("--out", default="results/report/variables.json")

    tables = sub.add_parser("tables", help="write manifest.md and timings.md")
    tables.add_argument("--manifest", default="results/manifest.json")
    tables.add_argument("--benchmarks", default="results/benchmarks")
    tables.add_argument("--logs", default="results/logs", help="job logs: each job's own memory and CPU time (difflab.usage)")
    tables.add_argument("--out-dir", default="results/report/tables")

    render = sub.add_parser("render", help="render the report to one self-contained HTML file")
    render.add_argument("--settings", default=None, help="JSON of the job report.render (config key report.title)")
    render.add_argument("--qmd", default="report/index.qmd")
    render.add_argument("--manifest", default="results/manifest.json")
    render.add_argument("--variables", default=None, help="results/report/variables.json")
    render.add_argument("--out", default="results/report/index.html")
    render.add_argument("--renderer", choices=["auto", "quarto", "pandoc"], default="auto")
    render.add_argument("--root", default=".", help="repository root: includes and figure paths are relative to it")
    render.add_argument("--css", default=None, help="default: style.css next to the .qmd")
    render.add_argument("--template", default=None, help="pandoc HTML template; default: template.html next to the .qmd")

    args = parser.parse_args(argv)
    if args.action == "variables":
        from difflab.report.facts import write_variables

        found = write_variables(args.facts, args.out)
        print(f"wrote {args.out} ({sum(len(v) for v in found.values())} experiments)")
    elif args.action == "tables":
        from difflab.report.run_tables import write_run_tables

        for path in write_run_tables(args.manifest, args.benchmarks, args.out_dir, args.logs):
            print(f"wrote {path}")
    else:
        from difflab.report.render import render_report
        from difflab.settings import from_json

        title = from_json("report.render", args.settings).title if args.settings else None
        variables = read_json(args.variables) if args.variables else {}
        description = render_report(args.qmd, args.manifest, args.out, args.root, args.renderer, args.css, args.template,
                                    variables=variables, title=title)
        print(f"wrote {args.out} ({description})")
