"""`python -m difflab parta run|figure <experiment> ...`: the thin command line of Part A's jobs.

    parta run <name> --settings JSON --checkpoint CKPT --data MNIST --classifier CLF
                     --out-dir results/experiments/part_a/<name> --metrics-out results/metrics/part_a_<name>.csv
                     [--hybrid-sweep results/experiments/part_a/hybrid_sweep/result.npz]
    parta figure <name> --result-dir results/experiments/part_a/<name> --out-dir results/figures/part_a/<name>

`run` computes (difflab.experiments.part_a) and writes result.npz, facts.json and the metrics CSV; `figure` draws
from those files only (difflab.figures.part_a) and does not import torch.
"""

from __future__ import annotations

import argparse

from difflab.io import stderr_logger

log = stderr_logger("difflab parta")


def experiment_names() -> list[str]:
    """The Part A experiments: the jobs difflab.settings.part_a registers as part_a.<name>."""
    import difflab.settings.part_a  # noqa: F401  (registers the Part A jobs)
    from difflab.settings import JOBS

    return [name.split(".", 1)[1] for name in JOBS if name.startswith("part_a.")]


def run(name: str, settings_text: str, checkpoint: str, data: str, classifier: str, out_dir: str, metrics_out: str,
        hybrid_sweep: str | None = None) -> None:
    """Run experiment `name` with its settings JSON (the job's settings class) and write its result files;
    hybrid_sweep: the hybrid sweep's result.npz (hybrids, illusions with part_a.hybrid_sigma_choice 'best')."""
    import torch

    from difflab.experiments.part_a import EXPERIMENTS
    from difflab.experiments.part_a.context import load_context, write_result
    from difflab.runtime import start_job
    from difflab.settings import from_json

    settings = from_json(f"part_a.{name}", settings_text)
    device, _ = start_job(settings.device, settings.seed)
    ctx = load_context(name, settings, checkpoint, data, classifier, device, hybrid_sweep)
    log(f"{name}: backend {settings.backend}, checkpoint {checkpoint} (epoch {ctx.epoch}), T = {ctx.T}, device {device}")
    with torch.no_grad():
        result = EXPERIMENTS[name](ctx, settings)
    # figures and tables say which model made them, and on which inputs (the report's captions)
    result.facts.update(backend=settings.backend, model=ctx.describe_model(), inputs=ctx.describe_inputs(settings))
    if not ctx.is_mnist:
        result.facts.update(model_id=getattr(ctx.den, "model_id", ""))
    write_result(result, out_dir, metrics_out)
    log(f"{name}: wrote {out_dir}/result.npz, facts.json and {len(result.metrics)} metric rows to {metrics_out}")


def cli(argv: list[str]) -> None:
    names = experiment_names()
    parser = argparse.ArgumentParser(prog="difflab parta", description="Part A experiments and their figures.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("run", help="compute one experiment: result.npz, facts.json, metrics CSV")
    p.add_argument("name", choices=names)
    p.add_argument("--settings", required=True, help="JSON: the job's settings (rules/common.smk settings_json)")
    p.add_argument("--checkpoint", required=True, help="the backend's checkpoint (mnist: the class-conditioned UNet)")
    p.add_argument("--data", required=True, help="the verified MNIST cache (results/data/mnist.npz)")
    p.add_argument("--classifier", required=True, help="the Part B MNIST classifier checkpoint")
    p.add_argument("--out-dir", required=True, help="results/experiments/part_a/<name>")
    p.add_argument("--metrics-out", required=True, help="results/metrics/part_a_<name>.csv")
    p.add_argument("--hybrid-sweep", help="the hybrid sweep's result.npz: the 1.9 sigma when part_a.hybrid_sigma_choice is best")
    f = verbs.add_parser("figure", help="draw one experiment's figures from its result files")
    f.add_argument("name", choices=names)
    f.add_argument("--result-dir", required=True, help="results/experiments/part_a/<name>")
    f.add_argument("--out-dir", required=True, help="results/figures/part_a/<name>")
    args = parser.parse_args(argv)
    if args.verb == "run":
        run(args.name, args.settings, args.checkpoint, args.data, args.classifier, args.out_dir, args.metrics_out,
            args.hybrid_sweep)
    else:
        from difflab.figures.part_a import draw

        draw(args.name, args.result_dir, args.out_dir)
        log(f"{args.name}: figures in {args.out_dir}")
