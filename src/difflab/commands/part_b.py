"""`python -m difflab partb <run|figure> ...`: the command line of the Part B experiments (thin argparse).

    run <name> --settings JSON <inputs> --out-dir results/experiments/part_b/<name> --metrics-out results/metrics/part_b_<name>.csv
    figure <name> --result-dir results/experiments/part_b/<name> --out-dir results/figures/part_b/<name>

Inputs of `run` by experiment: denoiser: --data --checkpoints...; ood: --data --denoiser --time-model;
time_grids/class_grids: --checkpoints...; time_gif/class_gif/cfg: --checkpoint; cfg_tradeoff/fid/ema: --metrics...;
models: --checkpoints... --classifier;
time_steps/class_steps: --checkpoint --data --classifier; steps: --metrics... --results...
"""

from __future__ import annotations

import argparse


INPUTS: dict[str, tuple[str, ...]] = {
    "denoiser": ("data", "checkpoints"),
    "ood": ("data", "denoiser", "time_model"),
    "time_grids": ("checkpoints",),
    "class_grids": ("checkpoints",),
    "time_gif": ("checkpoint",),
    "class_gif": ("checkpoint",),
    "cfg": ("checkpoint",),
    "cfg_tradeoff": ("metrics",),
    "fid": ("metrics",),
    "ema": ("metrics",),
    "models": ("checkpoints", "classifier"),
    "time_steps": ("checkpoint", "data", "classifier"),
    "class_steps": ("checkpoint", "data", "classifier"),
    "steps": ("metrics", "results"),
}
MANY = {"checkpoints", "metrics", "results"}


def run(args) -> None:
    """Rebuild the job's settings, start the job (threads, determinism, device) when it has a device, compute the
    Result and write it (result.npz, facts.json, the metrics CSV)."""
    from difflab import DifflabError
    from difflab.experiments.part_b import experiment_function, write_result
    from difflab.settings import from_json

    settings = from_json(f"part_b.{args.name}", args.settings)
    inputs = {key: getattr(args, key) for key in INPUTS[args.name]}
    missing = [f"--{key.replace('_', '-')}" for key, value in inputs.items() if value is None]
    if missing:
        raise DifflabError(f"part_b run {args.name} needs {', '.join(missing)}")
    function = experiment_function(args.name)
    if hasattr(settings, "device"):
        from difflab.runtime import start_job

        device, _ = start_job(settings.device, settings.seed)
        result = function(settings, device, **inputs)
    else:
        result = function(settings, **inputs)
    write_result(result, args.out_dir, args.metrics_out)
    print(f"part_b {args.name} -> {args.out_dir}, {args.metrics_out}")


def figure(args) -> None:
    from difflab.figures.part_b import draw

    draw(args.name, args.result_dir, args.out_dir)
    print(f"part_b figures of {args.name} -> {args.out_dir}")


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="difflab part_b", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="compute one Part B experiment into result.npz, facts.json and a metrics CSV")
    p.add_argument("name", choices=list(INPUTS))
    p.add_argument("--settings", required=True, help="JSON: the job's config keys (settings_json in rules/common.smk)")
    p.add_argument("--data", help="results/data/mnist.npz")
    p.add_argument("--checkpoints", nargs="+", help="kept checkpoints of one model (any order; sorted by epoch)")
    p.add_argument("--checkpoint", help="one checkpoint (the final one of its model)")
    p.add_argument("--denoiser", help="final single-step denoiser checkpoint")
    p.add_argument("--time-model", dest="time_model", help="final time-conditioned DDPM checkpoint")
    p.add_argument("--classifier", help="the MNIST classifier checkpoint")
    p.add_argument("--metrics", nargs="+", help="tidy metric CSVs")
    p.add_argument("--results", nargs="+", help="result.npz files of other experiments (steps: the wall times)")
    p.add_argument("--out-dir", required=True, help="results/experiments/part_b/<name>")
    p.add_argument("--metrics-out", required=True, help="results/metrics/part_b_<name>.csv")
    p.set_defaults(func=run)

    p = sub.add_parser("figure", help="draw one experiment's figures and tables from its result files")
    p.add_argument("name", choices=list(INPUTS))
    p.add_argument("--result-dir", required=True, help="results/experiments/part_b/<name>")
    p.add_argument("--out-dir", required=True, help="results/figures/part_b/<name>")
    p.set_defaults(func=figure)

    args = parser.parse_args(argv)
    args.func(args)
